"""The deferred wait on a job, on every backend: one trigger, one small poller per backend.

The poller (``backends.get_poller``) answers where the job is (DescribeJobs on AWS Batch; the job folder's exit
code locally) and, where the log is not elsewhere, its new log lines. Around it this trigger, like the provider's
``BatchJobTrigger``, waits for the job's end, and adds what ours needs: (1) each status transition and the latest
progress.json; (2) a ``running`` event every ``heartbeat_interval_s``, so the operator logs progress on a worker
(and heartbeats VAMS, also while the job waits in the queue: the event then carries ``{"state": "queued"}``) and
defers again; (3) the job terminated when the user kills the deferred task (``on_kill``) or its own deadline
passes; (4) the local job's log copied into the task log as it is written.

Faults: a transient error (throttling, HTTP 429/5xx, a timeout, a dropped connection) while polling is retried with
jittered exponential backoff for up to ``transient_budget_s`` of consecutive failures; a progress.json that cannot
be read only skips that poll's progress. A poll that fails for good (a non-transient error, or the budget spent)
terminates the job and fires an ``error`` event: no GPU job is left running with nobody waiting for it.
Only plain values are serialized: no conf, no task token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from isaaclab_pipeline.aws_retry import backoff_delay, is_transient
from isaaclab_pipeline.backends import JobPoller, JobState, Poll, get_poller

TRANSIENT_BUDGET_S = 900.0  # consecutive seconds of transient poll errors before the wait gives up
TERMINATE_ATTEMPTS = 5
LOG_LINES_PER_POLL = 2000  # a burst of log is copied over several polls rather than flooding one


class IsaacLabJobTrigger(BaseTrigger):
    """Wait for a job to end, or for the next heartbeat.

    :param poller: the backend's poller name (``backends.POLLERS``).
    :param poller_kwargs: its plain keyword arguments (``ComputeBackend.poller``).
    :param staging_uri: the job's staging URI (progress.json is read from it).
    :param aws_conn_id: the AWS connection for staging on S3.
    :param poll_interval_s: seconds between polls.
    :param heartbeat_interval_s: fire a ``running`` event after this many seconds (0: never).
    :param deadline: epoch seconds after which the job is terminated and a ``timeout`` event fires.
    :param last_status: the backend status already reported (not reported again).
    :param log_offset: where the copy of the job's log got to.
    :param transient_budget_s: seconds of consecutive transient poll errors tolerated before the job is
        terminated and the wait fails.
    """

    def __init__(self, *, poller: str, poller_kwargs: dict[str, Any], staging_uri: str,
                 aws_conn_id: str | None = "aws_default", poll_interval_s: float = 30.0,
                 heartbeat_interval_s: float = 600.0, deadline: float | None = None, last_status: str | None = None,
                 log_offset: int = 0, transient_budget_s: float = TRANSIENT_BUDGET_S) -> None:
        super().__init__()
        self.poller = poller
        self.poller_kwargs = dict(poller_kwargs)
        self.staging_uri = staging_uri
        self.aws_conn_id = aws_conn_id
        self.poll_interval_s = poll_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.deadline = deadline
        self.last_status = last_status
        self.log_offset = log_offset
        self.transient_budget_s = transient_budget_s

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the plain keyword arguments."""
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "poller": self.poller, "poller_kwargs": self.poller_kwargs, "staging_uri": self.staging_uri,
            "aws_conn_id": self.aws_conn_id, "poll_interval_s": self.poll_interval_s,
            "heartbeat_interval_s": self.heartbeat_interval_s, "deadline": self.deadline,
            "last_status": self.last_status, "log_offset": self.log_offset,
            "transient_budget_s": self.transient_budget_s,
        })

    def job_poller(self) -> JobPoller:
        """The backend's poller, rebuilt from the serialized fields."""
        return get_poller(self.poller, self.poller_kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends, the heartbeat is due or the deadline passes; yield one event."""
        poller = self.job_poller()
        started = time.monotonic()
        transitions: list[dict[str, Any]] = []
        last = self.last_status
        offset = self.log_offset
        failing_since: float | None = None
        failures = 0
        progress: dict[str, Any] | None = None
        name = self.poller_kwargs.get("job_id") or self.poller_kwargs.get("job_dir") or "?"
        while True:
            offset = await self._copy_log(poller, offset)
            try:
                poll = await asyncio.to_thread(poller.poll)
            except Exception as exc:
                failing_since = failing_since if failing_since is not None else time.monotonic()
                spent = time.monotonic() - failing_since
                if _retryable(exc) and spent < self.transient_budget_s and not self._past_deadline():
                    delay = min(backoff_delay(failures, max(self.poll_interval_s, 0.01), 60.0),
                                max(0.0, self.transient_budget_s - spent))
                    failures += 1
                    self.log.warning("Polling job %s failed (%s: %s); retry %d in %.1fs", name,
                                     type(exc).__name__, exc, failures, delay)
                    await asyncio.sleep(delay)
                    continue
                message = (f"the wait failed for good after {failures + 1} poll error(s) over {spent:.0f}s "
                           f"({type(exc).__name__}: {exc})")
                terminated = await self._terminate(poller, f"isaac-lab-training: {message}")
                yield TriggerEvent({"job": name, "backend_status": last, "transitions": transitions,
                                    "progress": progress, "deadline": self.deadline, "log_offset": offset,
                                    "status": "error",
                                    "message": f"{message}; " + ("job terminated" if terminated else
                                                                 "terminating the job failed too")})
                return
            failing_since, failures = None, 0
            if poll.status != last:
                transitions.append({"status": poll.status, "at": time.time(), "reason": poll.reason,
                                    "attempts": poll.attempts})
                self.log.info("Job %s: %s -> %s %s", name, last, poll.status, poll.reason)
                last = poll.status
            progress = await self._read_progress(name, progress)
            base = {"job": name, "backend_status": poll.status, "transitions": transitions,
                    "progress": _reported(progress, poll), "deadline": self.deadline}
            if poll.state.done:
                offset = await self._copy_log(poller, offset, drain=True)
                yield TriggerEvent({**base, "log_offset": offset,
                                    "status": "success" if poll.state == JobState.SUCCEEDED else "error",
                                    "message": poll.reason})
                return
            if self._past_deadline():
                await self._terminate(poller, "isaac-lab-training: the wait step's execution_timeout passed")
                yield TriggerEvent({**base, "log_offset": offset, "status": "timeout",
                                    "message": "execution_timeout passed; job terminated"})
                return
            if self.heartbeat_interval_s and time.monotonic() - started >= self.heartbeat_interval_s:
                yield TriggerEvent({**base, "log_offset": offset, "status": "running", "message": ""})
                return
            await asyncio.sleep(self.poll_interval_s)

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed/success, clear): terminate the job."""
        self.log.warning("Task killed while deferred: terminating job %s", self.poller_kwargs)
        await self._terminate(self.job_poller(), "the Airflow task was killed")

    async def _read_progress(self, name: str, progress: dict[str, Any] | None) -> dict[str, Any] | None:
        """The job's latest progress.json (logged when its step moved), else the last one read."""
        try:
            latest = await asyncio.to_thread(read_progress, self.staging_uri, self.aws_conn_id)
        except Exception as exc:  # progress is for the log and VAMS; the job's state does not depend on it
            self.log.warning("Reading progress of job %s failed (%s: %s); skipped this poll", name,
                             type(exc).__name__, exc)
            return progress
        if latest and (progress is None or _step(latest) != _step(progress)):
            self.log.info("Progress: %s", format_progress(latest))
        return latest or progress

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.time() >= self.deadline

    async def _copy_log(self, poller: JobPoller, offset: int, drain: bool = False) -> int:
        """Copy the job's new log lines into this task's log (local jobs; Batch's log is in CloudWatch)."""
        while True:
            try:
                lines, offset = await asyncio.to_thread(poller.read_log, offset)
            except Exception as exc:
                self.log.warning("Reading the job's log failed (%s: %s)", type(exc).__name__, exc)
                return offset
            for line in lines[:LOG_LINES_PER_POLL]:
                self.log.info("[job] %s", line)
            if not drain or not lines:
                return offset

    async def _terminate(self, poller: JobPoller, reason: str) -> bool:
        """Terminate the job, retrying transient errors; True once the backend accepted it."""
        for attempt in range(TERMINATE_ATTEMPTS):
            try:
                await asyncio.to_thread(poller.terminate, reason)
                return True
            except Exception as exc:
                if not is_transient(exc) or attempt == TERMINATE_ATTEMPTS - 1:
                    self.log.error("Terminating job %s failed: %s: %s", self.poller_kwargs, type(exc).__name__, exc)
                    return False
                await asyncio.sleep(backoff_delay(attempt, max(self.poll_interval_s, 0.01), 30.0))
        return False


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


def _step(progress: dict[str, Any]) -> tuple[Any, ...]:
    return progress.get("state"), progress.get("iteration"), progress.get("episodes")


def _reported(progress: dict[str, Any] | None, poll: Poll) -> dict[str, Any] | None:
    """The progress an event carries: nothing staged yet while the job is pending still reports (VAMS)."""
    if progress is None and poll.state == JobState.PENDING:
        return {"state": "queued", "backendStatus": poll.status}
    return progress


def _retryable(exc: BaseException) -> bool:
    """Transient AWS errors, and the provider hook's own "exceeded status_retries" (it retried throttling)."""
    return is_transient(exc) or "exceeded status_retries" in str(exc)


def read_progress(staging_uri: str, aws_conn_id: str | None) -> dict[str, Any] | None:
    """Return the runner's progress.json under ``staging_uri``, or None if there is none (yet)."""
    from isaaclab_pipeline import staging_layout, storage
    from isaaclab_pipeline.readers import read_json

    # None also when caught mid-write: the next poll reads it whole
    uri = storage.join(staging_uri, staging_layout.PROGRESS)
    return read_json(storage.for_uri(staging_uri, aws_conn_id).read_bytes(uri))
