"""The local backend with real processes: detached start, log streaming, exit codes, reattach, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from isaaclab_pipeline.backends import JobState
from isaaclab_pipeline.backends.local import LocalBackend, LocalJobPoller
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings

JOB = "5d0c1a9e-1111-4222-8333-944455556666"


def _fake_interpreter(tmp_path: Path, body: str) -> str:
    """A stand-in for the Isaac Lab venv's python: records its argv, then runs ``body``."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\necho "argv: $*"\n{body}\n')
    script.chmod(0o755)
    return str(script)


def _backend(tmp_path: Path, body: str) -> LocalBackend:
    return LocalBackend(PipelineSettings(isaaclab_python=_fake_interpreter(tmp_path, body)), root=tmp_path / "jobs")


def _spec() -> JobSpec:
    return JobSpec(job_id=JOB, mode="train", task="T", rl_library="rsl_rl", seed=1, num_envs=2,
                   staging_uri="/tmp/staging")


def _wait(backend: LocalBackend, handle, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = backend.status(handle)
        if status.state.done:
            return status
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_success_streams_the_log(tmp_path: Path) -> None:
    backend = _backend(tmp_path, 'echo "line one"; echo "line two"; exit 0')
    handle = backend.submit(_spec())
    status = _wait(backend, handle)
    assert status.state == JobState.SUCCEEDED and status.exit_code == 0
    lines, offset = LocalJobPoller(handle.external_id).read_log(0)
    assert lines[0].startswith("argv: -m isaaclab_runner run --spec ") and lines[0].endswith("/work")
    assert lines[1:] == ["line one", "line two"]
    assert LocalJobPoller(handle.external_id).read_log(offset) == ([], offset)
    spec_file = tmp_path / "jobs" / JOB / "spec.json"
    assert JobSpec.from_dict(__import__("json").loads(spec_file.read_text())) == _spec()


def test_failure_reports_the_exit_code(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "exit 2")
    status = _wait(backend, backend.submit(_spec()))
    assert status.state == JobState.FAILED and status.exit_code == 2
    assert status.reason == "runner exited with code 2 (attempt 1)"


def test_resubmit_reattaches_to_a_running_job(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep 30")
    first = backend.submit(_spec())
    pid = (tmp_path / "jobs" / JOB / "pid").read_text()
    second = backend.submit(_spec())
    assert second == first and (tmp_path / "jobs" / JOB / "pid").read_text() == pid
    assert backend.status(first).state == JobState.RUNNING
    backend.cancel(first, "test over")
    assert _wait(backend, first).state == JobState.FAILED


def test_resubmit_after_failure_starts_a_new_attempt_and_keeps_the_old_log(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "echo attempt; exit 1")
    _wait(backend, backend.submit(_spec()))
    handle = backend.submit(_spec())
    _wait(backend, handle)
    assert (tmp_path / "jobs" / JOB / "attempt-1" / "stdout.log").read_text().endswith("attempt\n")
    assert (tmp_path / "jobs" / JOB / "stdout.log").exists()


def test_cancel_terminates_the_process_group(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "sleep 60 & wait")
    handle = backend.submit(_spec())
    time.sleep(0.3)
    backend.cancel(handle, "killed")
    status = _wait(backend, handle, timeout=5)
    assert status.state == JobState.FAILED


def test_missing_interpreter_says_how_to_fix(tmp_path: Path) -> None:
    backend = LocalBackend(PipelineSettings(isaaclab_python=str(tmp_path / "nope")), root=tmp_path / "jobs")
    with pytest.raises(FileNotFoundError, match="make install"):
        backend.submit(_spec())


def _wait_through_retries(backend: LocalBackend, handle, timeout: float = 20.0):
    """Only watch: the job's own wrapper starts the next attempt (status() only reads)."""
    return _wait(backend, handle, timeout)


def test_sigterm_exit_is_retried_as_a_new_attempt(tmp_path: Path) -> None:
    backend = _backend(tmp_path, 'echo "attempt $ISAACLAB_JOB_ATTEMPT"; [ "$ISAACLAB_JOB_ATTEMPT" = 2 ] || exit 143')
    handle = backend.submit(_spec())
    status = _wait_through_retries(backend, handle)
    assert status.state == JobState.SUCCEEDED
    lines, _ = LocalJobPoller(handle.external_id).read_log(0)
    assert "attempt 1" in lines and "attempt 2" in lines
    assert "[backend] attempt 1 exited with 143 (interrupted); starting attempt 2" in lines
    assert (tmp_path / "jobs" / JOB / "attempt").read_text().strip() == "2"


def test_retries_stop_at_max_attempts(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "exit 143")
    backend.max_attempts = 2
    status = _wait_through_retries(backend, backend.submit(_spec()))
    assert status.state == JobState.FAILED and status.exit_code == 143
    assert (tmp_path / "jobs" / JOB / "attempt").read_text().strip() == "2"


def test_other_failures_and_cancelled_jobs_are_not_retried(tmp_path: Path) -> None:
    backend = _backend(tmp_path, "exit 1")
    assert _wait(backend, backend.submit(_spec())).state == JobState.FAILED
    assert not (tmp_path / "jobs" / JOB / "attempt-1").exists()
    (tmp_path / "b").mkdir()
    backend = _backend(tmp_path / "b", "trap 'exit 143' TERM; sleep 30 & wait")
    handle = backend.submit(_spec())
    time.sleep(0.3)
    backend.cancel(handle, "user")
    status = _wait(backend, handle, timeout=5)
    assert status.state == JobState.FAILED and status.exit_code == 143  # retryable, but cancelled
    assert (tmp_path / "b" / "jobs" / JOB / "attempt").read_text().strip() == "1"


def test_a_resubmit_after_failure_starts_from_empty_staging(tmp_path: Path) -> None:
    """Attempt 2 of one submission resumes from staging; a new submission must not: the old files are archived."""
    import dataclasses

    staging = tmp_path / "staging" / JOB
    spec = dataclasses.replace(_spec(), staging_uri=str(staging))
    backend = _backend(tmp_path, 'mkdir -p "$STAGING/checkpoints" && echo old > "$STAGING/checkpoints/model_9.pt"; '
                                 'exit 1')
    import os

    os.environ["STAGING"] = str(staging)
    try:
        _wait(backend, backend.submit(spec))
        assert (staging / "checkpoints" / "model_9.pt").exists()
        backend = _backend(tmp_path, "exit 0")
        _wait(backend, backend.submit(spec))
    finally:
        os.environ.pop("STAGING")
    assert not staging.exists() or not any(p.is_file() for p in staging.rglob("*"))
    archived = tmp_path / "staging" / "superseded" / JOB / "submission-1" / "checkpoints" / "model_9.pt"
    assert archived.read_text() == "old\n"
