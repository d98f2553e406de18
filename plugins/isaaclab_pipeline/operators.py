"""Thin operators for the job steps: submit a JobSpec to the configured backend, then wait for it.

As in the amazon provider's BatchOperator, ``__init__`` only stores values; the backend does the work. The wait
step defers on every backend (no worker slot is held for hours; ``make demo`` and ``dag.test`` run production's
path): its trigger polls the job, copies a local job's log into the task log, wakes a worker every
``isaaclab_heartbeat_interval_s`` to log progress, and terminates the job if the task is killed. Operators never
name a backend: links, log tails and pollers come from the backend interface.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from isaaclab_pipeline.backends import ComputeBackend, JobHandle, get_backend
from isaaclab_pipeline.backends.base import JobAbandonedError
from isaaclab_pipeline.compat import AirflowException, AirflowFailException
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.links import IsaacLabBatchJobLink, IsaacLabJobLogLink
from isaaclab_pipeline.settings import PipelineSettings
from isaaclab_pipeline.triggers import format_progress

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40  # lines of the job's log quoted in a failure
ProgressCallback = Callable[[Any, dict[str, Any]], Any]


class SubmitIsaacLabJobOperator(BaseOperator):
    """Submit a JobSpec to the compute backend; returns the job handle (idempotent across retries).

    Mapped over a sweep's trials (``.partial().expand()``, or inside a mapped task group), it submits only while
    fewer than ``isaaclab_max_concurrent_jobs`` of the run's other jobs are running (asked of the backend, not of
    Airflow's task states, so it holds in ``dag.test`` too); otherwise it defers and looks again every
    ``isaaclab_poll_interval_s``. Give the mapped task ``max_active_tis_per_dagrun=1`` so two trials never count at
    once.

    :param job_spec: the JobSpec as its JSON dict (templated; usually the resolve step's XCom).
    :param submitted_callback: called with ``(context, handle dict)`` once the job is submitted (the DAG passes
        VAMS's job registration); must not raise.
    """

    template_fields: Sequence[str] = ("job_spec",)
    template_fields_renderers = {"job_spec": "json"}
    operator_extra_links = (IsaacLabBatchJobLink(),)

    def __init__(self, *, job_spec: dict[str, Any] | Any, submitted_callback: ProgressCallback | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_spec = job_spec
        self.submitted_callback = submitted_callback

    def execute(self, context: Any, event: Any = None) -> dict[str, Any]:
        """Submit, or reattach to the job already submitted for this job id; a mapped trial first waits for a slot."""
        settings = PipelineSettings.load()
        spec = JobSpec.from_dict(self.job_spec)
        backend = get_backend(settings, context.get("run_id"))
        running = running_siblings(context, backend)
        if len(running) >= settings.max_concurrent_jobs:
            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.log.info("Job %s waits: %d of this run's jobs are running (%s), at most %d at once (Variable "
                          "isaaclab_max_concurrent_jobs)", spec.job_id, len(running), ", ".join(running),
                          settings.max_concurrent_jobs)
            self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=max(1.0, settings.poll_interval_s))),
                       method_name="execute")
        handle = backend.submit(spec)
        self.log.info("Job %s submitted to the %s backend: %s", spec.job_id, handle.backend, handle.external_id)
        persist_links(context, self, backend.links(handle))
        if self.submitted_callback is not None:
            self.submitted_callback(context, handle.to_dict())
        return handle.to_dict()


class WaitForIsaacLabJobOperator(BaseOperator):
    """Wait for a submitted job, logging its progress and status; fail with its reason and last log lines.

    The wait defers to the triggerer on every backend. Killing this task (mark failed, timeout) cancels the job,
    so no GPU keeps running for nothing.

    :param job_handle: the submit step's handle (templated); it carries the staging URI.
    :param progress_callback: called with ``(context, progress)`` on each progress report (the DAG passes VAMS's
        heartbeat); must not raise, except :class:`~isaaclab_pipeline.backends.base.JobAbandonedError` when nobody
        waits for the job any more: then the job is terminated and the step fails with its message.
    """

    template_fields: Sequence[str] = ("job_handle",)
    template_fields_renderers = {"job_handle": "json"}
    operator_extra_links = (IsaacLabBatchJobLink(), IsaacLabJobLogLink())

    def __init__(self, *, job_handle: dict[str, Any] | Any, progress_callback: ProgressCallback | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_handle = job_handle
        self.progress_callback = progress_callback
        self._backend: ComputeBackend | None = None

    def execute(self, context: Any) -> None:
        """Defer to the trigger until the job ends (or the next heartbeat)."""
        settings = PipelineSettings.load()
        handle = JobHandle.from_dict(self.job_handle)
        self._backend = get_backend(settings)
        persist_links(context, self, self._backend.links(handle))
        deadline = time.time() + self.execution_timeout.total_seconds() if self.execution_timeout else None
        self.log.info("Waiting for job %s on the %s backend (deferred to the triggerer)", handle.job_id,
                      handle.backend)
        self._defer(handle, self._backend, settings, deadline, last_status=None, log_offset=0)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resumed by the trigger: log what it saw; defer again on a heartbeat, return on success, else raise."""
        if not event:
            raise AirflowException("the trigger returned no event")
        settings = PipelineSettings.load()
        handle = JobHandle.from_dict(self.job_handle)
        backend = get_backend(settings)
        for t in event.get("transitions", []):
            self.log.info("Job %s is %s%s (attempt %s)", handle.external_id, t["status"],
                          f": {t['reason']}" if t.get("reason") else "", t.get("attempts") or 1)
        progress = event.get("progress") or {}
        self._report_progress(context, progress)
        persist_links(context, self, backend.links(handle))  # the log stream exists once the job started
        if event["status"] == "running":
            self._defer(handle, backend, settings, event.get("deadline"), last_status=event.get("backend_status"),
                        log_offset=event.get("log_offset", 0))
        if event["status"] == "success":
            self.log.info("Job %s succeeded", handle.job_id)
            self._log_timings(handle, settings)
            return progress
        tail = backend.log_tail(handle, LOG_TAIL_LINES)
        self._log_timings(handle, settings)
        # the job is over (its backend retried what it could: Batch's retryStrategy, the local wrapper): retrying
        # this step would only watch the same failed job again; clear submit_job to run it anew
        raise AirflowFailException(
            f"Job {handle.job_id} ({handle.external_id}) {event['status']}: {event.get('message') or ''}\n"
            "Last lines of its log:\n" + "\n".join(tail))

    def on_kill(self) -> None:
        """Cancel the job when the task is killed (the trigger's on_kill does it while deferred)."""
        if self._backend is not None:
            self._backend.cancel(JobHandle.from_dict(self.job_handle), "the Airflow task was killed")

    def _defer(self, handle: JobHandle, backend: ComputeBackend, settings: PipelineSettings, deadline: float | None,
               last_status: str | None, log_offset: int) -> None:
        from isaaclab_pipeline.triggers import IsaacLabJobTrigger

        poller = backend.poller(handle)
        trigger = IsaacLabJobTrigger(
            poller=poller.name, poller_kwargs=poller.kwargs, staging_uri=handle.staging_uri,
            aws_conn_id=settings.aws_conn_id, poll_interval_s=settings.poll_interval_s,
            heartbeat_interval_s=settings.heartbeat_interval_s, deadline=deadline, last_status=last_status,
            log_offset=log_offset)
        # our trigger enforces the deadline itself, so it can terminate the job first; Airflow's is a backstop
        timeout = timedelta(seconds=max(60.0, deadline - time.time() + 300)) if deadline else None
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def _log_timings(self, handle: JobHandle, settings: PipelineSettings) -> None:
        """Add the backend's queue wait to the job's timings (result.json) and log them as the task's last line."""
        from isaaclab_pipeline.timings import format_line, record_timings

        timings = record_timings(handle.to_dict(), handle.staging_uri, settings.aws_conn_id)
        if timings:
            self.log.info("%s", format_line(timings))

    def _report_progress(self, context: Any, progress: dict[str, Any]) -> None:
        if not progress:
            return
        self.log.info("Progress: %s", format_progress(progress))
        if self.progress_callback is None:
            return
        try:
            self.progress_callback(context, progress)
        except JobAbandonedError as exc:  # nobody waits for the result: no GPU keeps running for nobody
            handle = JobHandle.from_dict(self.job_handle)
            self.log.warning("Terminating job %s (%s): %s", handle.job_id, handle.external_id, exc)
            get_backend(PipelineSettings.load()).cancel(handle, f"isaac-lab-training: {exc}")
            raise AirflowFailException(f"Job {handle.job_id} ({handle.external_id}) terminated: {exc}") from exc


def job_error(staging_uri: str | None, aws_conn_id: str | None) -> str | None:
    """The failed job's own error (``error`` of its staged result.json: the exception, the out-of-memory or install
    diagnosis), or None when the job left none (killed before it could write one)."""
    import json

    from isaaclab_pipeline import staging_layout, storage

    if not staging_uri:
        return None
    uri = storage.join(staging_uri, staging_layout.RESULT)
    try:
        doc = json.loads(storage.for_uri(uri, aws_conn_id).read_bytes(uri) or b"{}")
    except Exception as exc:  # the failure is reported either way; this only adds its cause
        log.warning("Could not read %s: %s: %s", uri, type(exc).__name__, exc)
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    return error.strip() if isinstance(error, str) and error.strip() else None


def running_siblings(context: Any, backend: ComputeBackend) -> list[str]:
    """The job ids of this mapped task's other instances (a sweep's other trials) whose jobs are not over.

    Their handles are the XComs of the map indexes that succeeded (submitted); the backend says whether each job
    still runs. A job whose status cannot be read counts as running. An unmapped task has no siblings.
    """
    ti = context.get("ti")
    map_index = getattr(ti, "map_index", -1)
    if ti is None or map_index is None or map_index < 0:
        return []
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id]).get(ti.run_id, {})
    prefix = f"{ti.task_id}_"
    others = sorted(int(name[len(prefix):]) for name, state in states.items()
                    if name.startswith(prefix) and name[len(prefix):].isdigit() and str(state) == "success"
                    and int(name[len(prefix):]) != map_index)  # submitted: their handle is in XCom
    if not others:
        return []
    running = []
    for value in ti.xcom_pull(task_ids=ti.task_id, map_indexes=others) or []:
        if not value:
            continue
        handle = JobHandle.from_dict(value)
        try:
            done = backend.status(handle).state.done
        except Exception as exc:  # counted as running: the cap must hold while the backend is unreadable
            log.warning("Could not read the status of job %s (%s: %s); counting it as running", handle.job_id,
                           type(exc).__name__, exc)
            done = False
        if not done:
            running.append(handle.job_id)
    return running


def persist_links(context: Any, operator: BaseOperator, links: dict[str, dict[str, Any]]) -> None:
    """Store each extra link's values (the backend's ``links``); a link the backend has none for is stored empty,
    so rendering it finds no missing XCom."""
    if not operator.do_xcom_push:
        return
    for link in operator.operator_extra_links:
        values = links.get(link.key)
        if values:
            type(link).persist(context=context, operator=operator, **values)
        else:
            context["ti"].xcom_push(key=link.key, value={})
