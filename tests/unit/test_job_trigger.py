"""The wait trigger's own rules, on the Batch poller (a fake BatchClientHook) and the local one (a real job folder):
heartbeat events while running, deadline terminates, transient errors retried, serialization, the log copied."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from isaaclab_pipeline.backends.batch import BatchJobPoller
from isaaclab_pipeline.triggers import IsaacLabJobTrigger


class _Batch:
    """Answers DescribeJobs with a fixed sequence of statuses (an Exception in it is raised instead) and records
    TerminateJob (BatchClientHook's API)."""

    def __init__(self, statuses: list, terminate_errors: list[Exception] | None = None) -> None:
        self.statuses = statuses
        self.terminated: list[tuple[str, str]] = []
        self.terminate_errors = terminate_errors or []
        self.calls = 0

    def get_job_description(self, job_id: str) -> dict:
        self.calls += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        if isinstance(status, Exception):
            raise status
        return {"jobId": job_id, "status": status, "statusReason": "", "attempts": []}

    def terminate_job(self, job_id: str, reason: str) -> dict:
        if self.terminate_errors:
            raise self.terminate_errors.pop(0)
        self.terminated.append((job_id, reason))
        return {}


def _client_error(code: str, status: int = 400):
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "DescribeJobs")


def _trigger(tmp_path: Path, batch: _Batch, **kwargs) -> IsaacLabJobTrigger:
    trigger = IsaacLabJobTrigger(poller="batch", poller_kwargs={"job_id": "j-1"}, staging_uri=str(tmp_path),
                                 poll_interval_s=0.01, **kwargs)
    poller = BatchJobPoller("j-1")
    poller.hook = batch  # the cached_property's slot
    trigger.job_poller = lambda: poller  # type: ignore[method-assign]
    return trigger


def _first(trigger: IsaacLabJobTrigger) -> dict:
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
    trigger = IsaacLabJobTrigger(poller="batch", poller_kwargs={"job_id": "j-1", "region_name": "eu-west-1"},
                                 staging_uri="s3://b/p", deadline=123.0)
    classpath, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert set(kwargs) == {"poller", "poller_kwargs", "staging_uri", "aws_conn_id", "poll_interval_s",
                           "heartbeat_interval_s", "deadline", "last_status", "log_offset", "transient_budget_s"}
    assert IsaacLabJobTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert isinstance(IsaacLabJobTrigger(**kwargs).job_poller(), BatchJobPoller)


def test_transient_poll_errors_are_retried_and_the_job_is_not_touched(tmp_path: Path) -> None:
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    errors = [_client_error("TooManyRequestsException", 429), _client_error("ServerException", 500),
              _client_error("SlowDown", 503), ReadTimeoutError(endpoint_url="https://batch"),
              EndpointConnectionError(endpoint_url="https://batch")]
    batch = _Batch([*errors, "RUNNING", "SUCCEEDED"])
    event = _first(_trigger(tmp_path, batch))
    assert event["status"] == "success" and batch.terminated == []
    assert batch.calls == len(errors) + 2


def test_a_poll_that_fails_for_good_terminates_the_job(tmp_path: Path) -> None:
    """AccessDenied is not cured by waiting: the job is terminated at once, the event says why."""
    batch = _Batch(["RUNNING", _client_error("AccessDeniedException", 403)])
    event = _first(_trigger(tmp_path, batch))
    assert event["status"] == "error" and "AccessDeniedException" in event["message"]
    assert "job terminated" in event["message"] and batch.terminated[0][0] == "j-1"
    assert "the wait failed for good" in batch.terminated[0][1]


def test_throttling_beyond_the_budget_terminates_the_job(tmp_path: Path) -> None:
    batch = _Batch([_client_error("TooManyRequestsException", 429)])
    started = time.monotonic()
    event = _first(_trigger(tmp_path, batch, transient_budget_s=0.3))
    assert event["status"] == "error" and batch.terminated and time.monotonic() - started < 5
    assert batch.calls >= 2  # retried before giving up


def test_terminate_is_retried_through_throttling(tmp_path: Path) -> None:
    batch = _Batch([_client_error("ValidationError")], terminate_errors=[_client_error("TooManyRequestsException",
                                                                                        429)])
    event = _first(_trigger(tmp_path, batch))
    assert batch.terminated and event["message"].endswith("job terminated")


def test_unreadable_progress_does_not_fail_the_wait(tmp_path: Path, monkeypatch) -> None:
    from isaaclab_pipeline import triggers

    def slow_down(*args):
        raise _client_error("SlowDown", 503)

    monkeypatch.setattr(triggers, "read_progress", slow_down)
    event = _first(_trigger(tmp_path, _Batch(["RUNNING", "SUCCEEDED"])))
    assert event["status"] == "success"


def test_a_queued_job_still_reports_so_vams_hears_a_heartbeat(tmp_path: Path) -> None:
    event = _first(_trigger(tmp_path, _Batch(["RUNNABLE"]), heartbeat_interval_s=0.05))
    assert event["status"] == "running" and event["progress"] == {"state": "queued", "backendStatus": "RUNNABLE"}



def _local_job(tmp_path: Path, script: str, max_attempts: int = 3) -> tuple[IsaacLabJobTrigger, Path]:
    """A real local job: the backend's own wrapper running ``script`` (a stand-in for the runner)."""
    import sys

    from isaaclab_pipeline.backends.local import LocalBackend
    from isaaclab_pipeline.jobspec import JobSpec
    from isaaclab_pipeline.settings import PipelineSettings

    backend = LocalBackend(PipelineSettings(isaaclab_python=sys.executable, local_max_attempts=max_attempts),
                           root=tmp_path / "jobs")
    backend.python = str(tmp_path / "fake-python")
    (tmp_path / "job.py").write_text(script)
    (tmp_path / "fake-python").write_text(f"#!/bin/sh\nexec {sys.executable} {tmp_path / 'job.py'}\n")
    (tmp_path / "fake-python").chmod(0o755)
    spec = JobSpec(job_id="00000000-0000-0000-0000-000000000001", mode="train", task="T", rl_library="rsl_rl", seed=1,
                   num_envs=1, staging_uri=str(tmp_path / "staging"))
    handle = backend.submit(spec)
    poller = backend.poller(handle)
    trigger = IsaacLabJobTrigger(poller=poller.name, poller_kwargs=poller.kwargs, staging_uri=handle.staging_uri,
                                 poll_interval_s=0.05)
    return trigger, Path(handle.external_id)


def test_local_job_log_reaches_the_trigger_and_success_ends_the_wait(tmp_path: Path, capfd) -> None:
    trigger, _ = _local_job(tmp_path, "import time\nfor i in range(3):\n    print('line', i, flush=True)\n"
                                      "    time.sleep(0.1)")
    event = _first(trigger)
    assert event["status"] == "success", event
    out = capfd.readouterr().out  # Airflow's structured log of the trigger
    assert [line.split("[job] ")[1].split(" [")[0].strip() for line in out.splitlines() if "[job] " in line] == [
        "line 0", "line 1", "line 2"]
    assert event["log_offset"] > 0


def test_local_interrupted_attempt_is_retried_by_the_wrapper_not_by_polling(tmp_path: Path) -> None:
    """Exit 143 (a SIGTERM'd runner) starts attempt 2 inside the job, as Batch's retryStrategy does."""
    script = ("import os\nattempt = os.environ['ISAACLAB_JOB_ATTEMPT']\nprint('attempt', attempt, flush=True)\n"
              "raise SystemExit(143 if attempt == '1' else 0)")
    trigger, jdir = _local_job(tmp_path, script)
    event = _first(trigger)
    assert event["status"] == "success", event
    log = (jdir / "stdout.log").read_text()
    assert "attempt 1" in log and "starting attempt 2" in log and "attempt 2" in log
    assert (jdir / "attempt").read_text().strip() == "2"


def test_local_job_killed_while_deferred_is_terminated_and_not_retried(tmp_path: Path) -> None:
    script = "import time\nprint('training', flush=True)\ntime.sleep(60)"
    trigger, jdir = _local_job(tmp_path, script)
    deadline = time.time() + 10
    while not (jdir / "stdout.log").exists() or "training" not in (jdir / "stdout.log").read_text():
        assert time.time() < deadline
        time.sleep(0.05)
    asyncio.run(trigger.on_kill())
    while not (jdir / "exit_code").exists():
        assert time.time() < deadline
        time.sleep(0.05)
    assert (jdir / "cancelled").read_text() == "the Airflow task was killed"
    event = _first(trigger)
    assert event["status"] == "error" and "cancelled" in event["message"]
    assert (jdir / "attempt").read_text().strip() == "1"
