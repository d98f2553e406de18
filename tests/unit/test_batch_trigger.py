"""The wait trigger's own rules: heartbeat events while running, deadline terminates, serialization."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from isaaclab_pipeline.triggers import IsaacLabBatchJobTrigger


class _Batch:
    """Answers DescribeJobs with a fixed sequence of statuses and records TerminateJob (BatchClientHook's API)."""

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.terminated: list[tuple[str, str]] = []

    def get_job_description(self, job_id: str) -> dict:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"jobId": job_id, "status": status, "statusReason": "", "attempts": []}

    def terminate_job(self, job_id: str, reason: str) -> dict:
        self.terminated.append((job_id, reason))
        return {}


def _trigger(tmp_path: Path, batch: _Batch, **kwargs) -> IsaacLabBatchJobTrigger:
    trigger = IsaacLabBatchJobTrigger(job_id="j-1", staging_uri=str(tmp_path), poll_interval_s=0.01, **kwargs)
    trigger.hook = lambda: batch  # type: ignore[method-assign]
    return trigger


def _first(trigger: IsaacLabBatchJobTrigger) -> dict:
    async def first() -> dict:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return asyncio.run(first())


def test_running_job_fires_a_heartbeat_with_progress_and_transitions(tmp_path: Path) -> None:
    (tmp_path / "progress.json").write_text(json.dumps({"iteration": 12, "maxIterations": 100}))
    event = _first(_trigger(tmp_path, _Batch(["RUNNABLE", "STARTING", "RUNNING"]), heartbeat_interval_s=0.1))
    assert event["status"] == "running" and event["progress"]["iteration"] == 12
    assert [t["status"] for t in event["transitions"]] == ["RUNNABLE", "STARTING", "RUNNING"]


def test_status_already_reported_is_not_repeated(tmp_path: Path) -> None:
    event = _first(_trigger(tmp_path, _Batch(["RUNNING", "FAILED"]), last_status="RUNNING"))
    assert event["status"] == "error" and [t["status"] for t in event["transitions"]] == ["FAILED"]


def test_deadline_terminates_the_job(tmp_path: Path) -> None:
    batch = _Batch(["RUNNING"])
    event = _first(_trigger(tmp_path, batch, deadline=time.time() - 1))
    assert event["status"] == "timeout" and batch.terminated and batch.terminated[0][0] == "j-1"


def test_serialized_kwargs_are_plain_and_carry_no_conf(tmp_path: Path) -> None:
    trigger = IsaacLabBatchJobTrigger(job_id="j-1", staging_uri="s3://b/p", deadline=123.0)
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert set(kwargs) == {"job_id", "staging_uri", "aws_conn_id", "region_name", "poll_interval_s",
                           "heartbeat_interval_s", "deadline", "last_status"}
    assert IsaacLabBatchJobTrigger(**kwargs).serialize() == (classpath, kwargs)
