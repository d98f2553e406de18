"""Thin operators for the job steps: submit a JobSpec to the configured backend, then wait for it.

As in the amazon provider's BatchOperator, ``__init__`` only stores values; the backend does the work. The wait
step blocks and streams the job's log on the local backend, and defers on AWS Batch (no worker slot is held for
hours): its trigger polls the job, wakes a worker every ``isaaclab_heartbeat_interval_s`` to log progress, and
terminates the job if the task is killed.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from isaaclab_pipeline import storage
from isaaclab_pipeline.backends import JobHandle, JobState, get_backend
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.links import IsaacLabBatchJobLink, IsaacLabJobLogLink
from isaaclab_pipeline.settings import PipelineSettings

try:  # the VAMS heartbeat (issue 6); absent in deployments without the VAMS bridge
    from isaaclab_pipeline.vams.callbacks import on_job_progress
except ImportError:
    on_job_progress = None

LOG_TAIL_LINES = 40  # lines of the job's log quoted in a failure


class SubmitIsaacLabJobOperator(BaseOperator):
    """Submit a JobSpec to the compute backend; returns the job handle (idempotent across retries).

    :param job_spec: the JobSpec as its JSON dict (templated; usually the resolve step's XCom).
    """

    template_fields: Sequence[str] = ("job_spec",)
    template_fields_renderers = {"job_spec": "json"}
    operator_extra_links = (IsaacLabBatchJobLink(),)

    def __init__(self, *, job_spec: dict[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_spec = job_spec

    def execute(self, context: Any) -> dict[str, Any]:
        """Submit, or reattach to the job already submitted for this job id."""
        settings = PipelineSettings.load()
        spec = JobSpec.from_json_dict(self.job_spec)
        handle = get_backend(settings, context.get("run_id")).submit(spec)
        self.log.info("Job %s submitted to the %s backend: %s", spec.job_id, handle.backend, handle.external_id)
        if handle.backend == "batch":
            _persist_job_link(context, self, handle)
        else:
            _persist_no_links(context, self)
        return handle.to_dict()


class WaitForIsaacLabJobOperator(BaseOperator):
    """Wait for a submitted job, logging its progress and status; fail with its reason and last log lines.

    Killing this task (mark failed, timeout) cancels the job, so no GPU keeps running for nothing.

    :param job_handle: the submit step's handle (templated).
    :param staging_uri: the job's staging URI, where the runner writes progress.json (templated).
    :param deferrable: defer to the triggerer while waiting; None (default): on AWS Batch yes, locally no.
    """

    template_fields: Sequence[str] = ("job_handle", "staging_uri")
    template_fields_renderers = {"job_handle": "json"}
    operator_extra_links = (IsaacLabBatchJobLink(), IsaacLabJobLogLink())

    def __init__(self, *, job_handle: dict[str, Any] | Any, staging_uri: str, deferrable: bool | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_handle = job_handle
        self.staging_uri = staging_uri
        self.deferrable = deferrable
        self._backend: Any = None

    def execute(self, context: Any) -> dict[str, Any]:
        """Defer (Batch) or poll until the job ends; return its final progress."""
        settings = PipelineSettings.load()
        handle = JobHandle.from_dict(self.job_handle)
        self._backend = get_backend(settings)
        if handle.backend == "batch":
            _persist_job_link(context, self, handle)
        else:
            _persist_no_links(context, self)
        deferrable = handle.backend == "batch" if self.deferrable is None else self.deferrable
        if deferrable:
            deadline = time.time() + self.execution_timeout.total_seconds() if self.execution_timeout else None
            self._defer(handle, settings, deadline, last_status=None)
        return self._wait_blocking(context, handle, settings)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Log what the trigger saw; defer again on a heartbeat, return on success, raise on failure."""
        if not event:
            raise AirflowException("the trigger returned no event")
        settings = PipelineSettings.load()
        handle = JobHandle.from_dict(self.job_handle)
        for t in event.get("transitions", []):
            self.log.info("Batch job %s is %s%s (attempt %s)", handle.external_id, t["status"],
                          f": {t['reason']}" if t.get("reason") else "", t.get("attempts") or 1)
        progress = event.get("progress") or {}
        self._report_progress(context, progress)
        backend = get_backend(settings)
        if handle.backend == "batch" and (info := backend.log_info(handle)):
            _persist_log_link(context, self, handle, info)
        if event["status"] == "running":
            self._defer(handle, settings, event.get("deadline"), last_status=event.get("batch_status"))
        if event["status"] == "success":
            self.log.info("Job %s succeeded", handle.job_id)
            return progress
        status = backend.status(handle)
        tail = backend.log_tail(handle, LOG_TAIL_LINES) if hasattr(backend, "log_tail") else []
        raise AirflowException(
            f"Job {handle.job_id} ({handle.external_id}) {event['status']}: {event.get('message') or ''} "
            f"[{status.reason}]\nLast lines of its log:\n" + "\n".join(tail))

    def on_kill(self) -> None:
        """Cancel the job when the task is killed (the trigger's on_kill does it while deferred)."""
        if self._backend is not None:
            self._backend.cancel(JobHandle.from_dict(self.job_handle), "the Airflow task was killed")

    def _defer(self, handle: JobHandle, settings: PipelineSettings, deadline: float | None,
               last_status: str | None) -> None:
        from isaaclab_pipeline.triggers import IsaacLabBatchJobTrigger

        trigger = IsaacLabBatchJobTrigger(
            job_id=handle.external_id, staging_uri=self.staging_uri, aws_conn_id=settings.aws_conn_id,
            region_name=handle.details.get("regionName"), poll_interval_s=settings.poll_interval_s,
            heartbeat_interval_s=settings.heartbeat_interval_s, deadline=deadline, last_status=last_status)
        # our trigger enforces the deadline itself, so it can terminate the job first; Airflow's is a backstop
        timeout = timedelta(seconds=max(60.0, deadline - time.time() + 300)) if deadline else None
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)

    def _wait_blocking(self, context: Any, handle: JobHandle, settings: PipelineSettings) -> dict[str, Any]:
        store = storage.for_uri(self.staging_uri, settings.aws_conn_id)
        progress_uri = storage.join(self.staging_uri, "progress.json")
        offset, tail, last_reported, last_state = 0, deque(maxlen=LOG_TAIL_LINES), None, None
        progress = None
        while True:
            status = self._backend.status(handle)
            if status.state != last_state:
                self.log.info("Job %s is %s", handle.job_id, status.reason or status.state)
                last_state = status.state
            lines, offset = self._backend.read_log(handle, offset)
            for line in lines:
                self.log.info("[job] %s", line)
            tail.extend(lines)
            progress = _read_json(store, progress_uri) or progress
            if progress and progress.get("iteration") != last_reported:
                last_reported = progress.get("iteration")
                self._report_progress(context, progress)
            if status.state.done:
                break
            time.sleep(settings.poll_interval_s)
        if status.state != JobState.SUCCEEDED:
            raise AirflowException(
                f"Job {handle.job_id} failed: {status.reason}\nLast lines of its log:\n" + "\n".join(tail))
        self.log.info("Job %s succeeded", handle.job_id)
        return progress or {}

    def _report_progress(self, context: Any, progress: dict[str, Any]) -> None:
        if not progress:
            return
        self.log.info("Progress: %s", format_progress(progress))
        if on_job_progress is not None:
            on_job_progress(context, progress)


def _persist_job_link(context: Any, operator: BaseOperator, handle: JobHandle) -> None:
    IsaacLabBatchJobLink.persist(context=context, operator=operator, region_name=handle.details.get("regionName"),
                                 aws_partition=handle.details.get("partition", "aws"), job_id=handle.external_id)


def _persist_no_links(context: Any, operator: BaseOperator) -> None:
    """A local job has no AWS console pages: store empty links, so rendering them finds no missing XCom."""
    if operator.do_xcom_push:
        for link in operator.operator_extra_links:
            context["ti"].xcom_push(key=link.key, value={})


def _persist_log_link(context: Any, operator: BaseOperator, handle: JobHandle, info: dict[str, str]) -> None:
    IsaacLabJobLogLink.persist(context=context, operator=operator, region_name=info["awslogs_region"],
                               aws_partition=handle.details.get("partition", "aws"), **info)


def _read_json(store: storage.Storage, uri: str) -> dict[str, Any] | None:
    data = store.read_bytes(uri)
    try:
        return json.loads(data) if data else None
    except json.JSONDecodeError:  # caught mid-write by a non-atomic store; next poll reads it whole
        return None


def format_progress(progress: dict[str, Any]) -> str:
    """Render progress.json as one log line: state, iteration/max (percent), mean reward and episode length."""
    parts = [progress.get("state", "?")]
    if "iteration" in progress and progress.get("maxIterations"):
        it, total = progress["iteration"], progress["maxIterations"]
        parts.append(f"iteration {it}/{total} ({100 * it / total:.0f}%)")
    if "meanReward" in progress:
        parts.append(f"mean reward {progress['meanReward']:.2f}")
    if "meanEpisodeLength" in progress:
        parts.append(f"mean episode length {progress['meanEpisodeLength']:.1f}")
    return ", ".join(parts)
