"""The deferred wait on a Batch job: polls the job (the provider's BatchClientHook) and the runner's progress.json.

Unlike the provider's ``BatchJobTrigger`` it (1) reports each status transition and the latest progress,
(2) fires a ``running`` event every ``heartbeat_interval_s`` so the operator can log progress on a worker (and
heartbeat VAMS) then defer again, (3) terminates the job when the user kills the deferred task (``on_kill``) or
when its own deadline passes. Only plain values are serialized: no conf, no task token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

TERMINAL = ("SUCCEEDED", "FAILED")


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
    """

    def __init__(self, *, job_id: str, staging_uri: str, aws_conn_id: str | None = "aws_default",
                 region_name: str | None = None, poll_interval_s: float = 30.0, heartbeat_interval_s: float = 600.0,
                 deadline: float | None = None, last_status: str | None = None) -> None:
        super().__init__()
        self.job_id = job_id
        self.staging_uri = staging_uri
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval_s = poll_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.deadline = deadline
        self.last_status = last_status

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the class path and the plain keyword arguments."""
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "job_id": self.job_id, "staging_uri": self.staging_uri, "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name, "poll_interval_s": self.poll_interval_s,
            "heartbeat_interval_s": self.heartbeat_interval_s, "deadline": self.deadline,
            "last_status": self.last_status,
        })

    def hook(self) -> Any:
        """The provider's BatchClientHook (its calls are synchronous; they run in a thread)."""
        from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook

        return BatchClientHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends, the heartbeat is due or the deadline passes; yield one event."""
        hook = self.hook()
        started = time.monotonic()
        transitions: list[dict[str, Any]] = []
        last = self.last_status
        while True:
            job = await asyncio.to_thread(hook.get_job_description, self.job_id)
            status = job["status"]
            if status != last:
                transitions.append({"status": status, "at": time.time(), "reason": job.get("statusReason", ""),
                                    "attempts": len(job.get("attempts") or [])})
                self.log.info("Batch job %s: %s -> %s %s", self.job_id, last, status, job.get("statusReason", ""))
                last = status
            progress = await asyncio.to_thread(read_progress, self.staging_uri, self.aws_conn_id)
            base = {"job_id": self.job_id, "batch_status": status, "transitions": transitions,
                    "progress": progress, "deadline": self.deadline}
            if status in TERMINAL:
                yield TriggerEvent({**base, "status": "success" if status == "SUCCEEDED" else "error",
                                    "message": job.get("statusReason", "")})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                await asyncio.to_thread(hook.terminate_job, self.job_id, "isaac-lab-training: the wait step's "
                                        "execution_timeout passed")
                yield TriggerEvent({**base, "status": "timeout", "message": "execution_timeout passed; job terminated"})
                return
            if self.heartbeat_interval_s and time.monotonic() - started >= self.heartbeat_interval_s:
                yield TriggerEvent({**base, "status": "running", "message": ""})
                return
            await asyncio.sleep(self.poll_interval_s)

    async def on_kill(self) -> None:
        """The user killed the deferred task (mark failed/success, clear): terminate the Batch job."""
        self.log.warning("Task killed while deferred: terminating Batch job %s", self.job_id)
        await asyncio.to_thread(self.hook().terminate_job, self.job_id, "the Airflow task was killed")


def read_progress(staging_uri: str, aws_conn_id: str | None) -> dict[str, Any] | None:
    """Return the runner's progress.json under ``staging_uri``, or None if there is none (yet)."""
    from isaaclab_pipeline import storage

    data = storage.for_uri(staging_uri, aws_conn_id).read_bytes(storage.join(staging_uri, "progress.json"))
    try:
        return json.loads(data) if data else None
    except json.JSONDecodeError:  # caught mid-write; the next poll reads it whole
        return None
