"""The deferred wait on a Batch job: polls the job (the provider's BatchClientHook) and the runner's progress.json.

Unlike the provider's ``BatchJobTrigger`` it (1) reports each status transition and the latest progress,
(2) fires a ``running`` event every ``heartbeat_interval_s`` so the operator can log progress on a worker (and
heartbeat VAMS, also while the job waits in the queue: the event then carries ``{"state": "queued"}``) then defer
again, (3) terminates the job when the user kills the deferred task (``on_kill``) or when its own deadline passes.

Faults: a transient AWS error (throttling, HTTP 429/5xx, a timeout, a dropped connection) while polling is retried
with jittered exponential backoff for up to ``transient_budget_s`` of consecutive failures; a progress.json that
cannot be read only skips that poll's progress. A poll that fails for good (a non-transient error, or the budget
spent) terminates the job and fires an ``error`` event: no GPU job is left running with nobody waiting for it.
Only plain values are serialized: no conf, no task token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from isaaclab_pipeline.backends.base import backoff_delay, is_transient

TERMINAL = ("SUCCEEDED", "FAILED")
QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING")
TRANSIENT_BUDGET_S = 900.0  # consecutive seconds of transient poll errors before the wait gives up
TERMINATE_ATTEMPTS = 5


class IsaacLabBatchJobTrigger(BaseTrigger):
    """Wait for a Batch job to end, or for the next heartbeat.

    :param job_id: the Batch job id.
    :param staging_uri: the job's staging URI (progress.json is read from it).
    :param aws_conn_id: the AWS connection.
    :param region_name: the AWS region (None: the connection's).
    :param poll_interval_s: seconds between DescribeJobs calls.
    :param heartbeat_interval_s: fire a ``running`` event after this many seconds (0: never).
    :param deadline: epoch seconds after which the job is terminated and a ``timeout`` event fires.
    :param last_status: the Batch status already reported (not reported again).
    :param transient_budget_s: seconds of consecutive transient poll errors tolerated before the job is
        terminated and the wait fails.
    """

    def __init__(self, *, job_id: str, staging_uri: str, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, poll_interval_s: float = 30.0, heartbeat_interval_s: float = 600.0,
                 deadline: float | None = None, last_status: str | None = None,
                 transient_budget_s: float = TRANSIENT_BUDGET_S) -> None:
        super().__init__()
        self.job_id = job_id
        self.staging_uri = staging_uri
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval_s = poll_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.deadline = deadline
        self.last_status = last_status
        self.transient_budget_s = transient_budget_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the plain keyword arguments."""
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "job_id": self.job_id, "staging_uri": self.staging_uri, "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name, "poll_interval_s": self.poll_interval_s,
            "heartbeat_interval_s": self.heartbeat_interval_s, "deadline": self.deadline,
            "last_status": self.last_status, "transient_budget_s": self.transient_budget_s,
        })

    def hook(self) -> Any:
        """The provider's BatchClientHook (its calls are synchronous; they run in a thread)."""
        from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook

        # few status retries: this trigger retries throttling itself, with its own budget
        return BatchClientHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, status_retries=3)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends, the heartbeat is due or the deadline passes; yield one event."""
        hook = self.hook()
        started = time.monotonic()
        transitions: list[dict[str, Any]] = []
        last = self.last_status
        failing_since: float | None = None
        failures = 0
        progress: dict[str, Any] | None = None
        while True:
            try:
                job = await asyncio.to_thread(hook.get_job_description, self.job_id)
            except Exception as exc:
                failing_since = failing_since if failing_since is not None else time.monotonic()
                spent = time.monotonic() - failing_since
                if _retryable(exc) and spent < self.transient_budget_s and not self._past_deadline():
                    delay = min(backoff_delay(failures, max(self.poll_interval_s, 0.01), 60.0),
                                max(0.0, self.transient_budget_s - spent))
                    failures += 1
                    self.log.warning("Polling Batch job %s failed (%s: %s); retry %d in %.1fs", self.job_id,
                                     type(exc).__name__, exc, failures, delay)
                    await asyncio.sleep(delay)
                    continue
                message = (f"the wait failed for good after {failures + 1} poll error(s) over {spent:.0f}s "
                           f"({type(exc).__name__}: {exc})")
                terminated = await self._terminate(hook, f"isaac-lab-training: {message}")
                yield TriggerEvent({"job_id": self.job_id, "batch_status": last, "transitions": transitions,
                                    "progress": progress, "deadline": self.deadline, "status": "error",
                                    "message": f"{message}; " + ("Batch job terminated" if terminated else
                                                                 "terminating the Batch job failed too")})
                return
            failing_since, failures = None, 0
            status = job["status"]
            if status != last:
                transitions.append({"status": status, "at": time.time(), "reason": job.get("statusReason", ""),
                                    "attempts": len(job.get("attempts") or [])})
                self.log.info("Batch job %s: %s -> %s %s", self.job_id, last, status, job.get("statusReason", ""))
                last = status
            try:
                progress = await asyncio.to_thread(read_progress, self.staging_uri, self.aws_conn_id) or progress
            except Exception as exc:  # progress is for the log and VAMS; the job's state does not depend on it
                self.log.warning("Reading progress of Batch job %s failed (%s: %s); skipped this poll", self.job_id,
                                 type(exc).__name__, exc)
            if progress is None and status in QUEUED:  # nothing staged yet: still report, so VAMS hears a heartbeat
                progress_out: dict[str, Any] | None = {"state": "queued", "batchStatus": status}
            else:
                progress_out = progress
            base = {"job_id": self.job_id, "batch_status": status, "transitions": transitions,
                    "progress": progress_out, "deadline": self.deadline}
            if status in TERMINAL:
                yield TriggerEvent({**base, "status": "success" if status == "SUCCEEDED" else "error",
                                    "message": job.get("statusReason", "")})
                return
            if self._past_deadline():
                await self._terminate(hook, "isaac-lab-training: the wait step's execution_timeout passed")
                yield TriggerEvent({**base, "status": "timeout", "message": "execution_timeout passed; job terminated"})
                return
            if self.heartbeat_interval_s and time.monotonic() - started >= self.heartbeat_interval_s:
                yield TriggerEvent({**base, "status": "running", "message": ""})
                return
            await asyncio.sleep(self.poll_interval_s)

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed/success, clear): terminate the Batch job."""
        self.log.warning("Task killed while deferred: terminating Batch job %s", self.job_id)
        await self._terminate(self.hook(), "the Airflow task was killed")

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    async def _terminate(self, hook: Any, reason: str) -> bool:
        """TerminateJob, retrying transient errors; True once Batch accepted it."""
        for attempt in range(TERMINATE_ATTEMPTS):
            try:
                await asyncio.to_thread(hook.terminate_job, self.job_id, reason[:1024])
                return True
            except Exception as exc:
                if not is_transient(exc) or attempt == TERMINATE_ATTEMPTS - 1:
                    self.log.error("Terminating Batch job %s failed: %s: %s", self.job_id, type(exc).__name__, exc)
                    return False
                await asyncio.sleep(backoff_delay(attempt, max(self.poll_interval_s, 0.01), 30.0))
        return False


def _retryable(exc: BaseException) -> bool:
    """Transient AWS errors, and the provider hook's own "exceeded status_retries" (it retried throttling)."""
    return is_transient(exc) or "exceeded status_retries" in str(exc)


def read_progress(staging_uri: str, aws_conn_id: str | None) -> dict[str, Any] | None:
    """Return the runner's progress.json under ``staging_uri``, or None if there is none (yet)."""
    from isaaclab_pipeline import storage

    data = storage.for_uri(staging_uri, aws_conn_id).read_bytes(storage.join(staging_uri, "progress.json"))
    try:
        return json.loads(data) if data else None
    except json.JSONDecodeError:  # caught mid-write; the next poll reads it whole
        return None
