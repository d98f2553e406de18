"""Thin operators for the job steps: submit a JobSpec to the configured backend, then wait for it.

As in the amazon provider's BatchOperator, ``__init__`` only stores values; the backend does the work.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from isaaclab_pipeline import storage
from isaaclab_pipeline.backends import JobHandle, JobState, get_backend
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings

LOG_TAIL_LINES = 40  # lines of the job's log quoted in a failure


class SubmitIsaacLabJobOperator(BaseOperator):
    """Submit a JobSpec to the compute backend; returns the job handle (idempotent across retries).

    :param job_spec: the JobSpec as its JSON dict (templated; usually the resolve step's XCom).
    """

    template_fields: Sequence[str] = ("job_spec",)
    template_fields_renderers = {"job_spec": "json"}

    def __init__(self, *, job_spec: dict[str, Any] | Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_spec = job_spec

    def execute(self, context: Any) -> dict[str, Any]:
        """Submit, or reattach to the job already submitted for this job id."""
        settings = PipelineSettings.load()
        spec = JobSpec.from_json_dict(self.job_spec)
        handle = get_backend(settings).submit(spec)
        self.log.info("Job %s submitted to the %s backend: %s", spec.job_id, handle.backend, handle.external_id)
        return handle.to_dict()


class WaitForIsaacLabJobOperator(BaseOperator):
    """Wait for a submitted job, streaming its log and progress into the task log; fail with its reason.

    Killing this task (mark failed, timeout) cancels the job, so no GPU keeps running for nothing.

    :param job_handle: the submit step's handle (templated).
    :param staging_uri: the job's staging URI, where the runner writes progress.json (templated).
    """

    template_fields: Sequence[str] = ("job_handle", "staging_uri")
    template_fields_renderers = {"job_handle": "json"}

    def __init__(self, *, job_handle: dict[str, Any] | Any, staging_uri: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_handle = job_handle
        self.staging_uri = staging_uri
        self._backend: Any = None

    def execute(self, context: Any) -> dict[str, Any]:
        """Poll until the job ends; return its final progress."""
        settings = PipelineSettings.load()
        self._backend = get_backend(settings)
        handle = JobHandle.from_dict(self.job_handle)
        store = storage.for_uri(self.staging_uri, settings.aws_conn_id)
        progress_uri = storage.join(self.staging_uri, "progress.json")
        offset, tail, last_reported = 0, deque(maxlen=LOG_TAIL_LINES), None
        while True:
            status = self._backend.status(handle)
            lines, offset = self._backend.read_log(handle, offset)
            for line in lines:
                self.log.info("[job] %s", line)
            tail.extend(lines)
            progress = _read_json(store, progress_uri)
            if progress and progress.get("iteration") != last_reported:
                last_reported = progress.get("iteration")
                self.log.info("Progress: %s", format_progress(progress))
            if status.state.done:
                break
            time.sleep(settings.poll_interval_s)
        if status.state != JobState.SUCCEEDED:
            raise AirflowException(
                f"Job {handle.job_id} failed: {status.reason}\nLast lines of its log:\n" + "\n".join(tail))
        self.log.info("Job %s succeeded", handle.job_id)
        return progress or {}

    def on_kill(self) -> None:
        """Cancel the job when the task is killed."""
        if self._backend is not None:
            self._backend.cancel(JobHandle.from_dict(self.job_handle), "the Airflow task was killed")


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
