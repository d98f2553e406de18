"""What the runner says when Isaac Lab fails in ways the user guide's troubleshooting names."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from isaaclab_runner import runner as runner_mod
from isaaclab_runner.jobspec import JobSpec
from isaaclab_runner.runner import OUT_OF_MEMORY, JobRunner

SPEC = {"jobId": "00000000-0000-0000-0000-000000000001", "mode": "train", "task": "T", "rlLibrary": "rsl_rl",
        "seed": 1, "numEnvs": 8192, "maxIterations": 2}


@pytest.mark.parametrize("line", [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total capacity)",
    "RuntimeError: CUDA error: out of memory",
    "Warp CUDA error 2: cudaErrorMemoryAllocation",
])
def test_out_of_memory_lines_are_recognised(line: str) -> None:
    assert OUT_OF_MEMORY.search(line)


def test_an_ordinary_failure_is_not_out_of_memory() -> None:
    assert not OUT_OF_MEMORY.search("ValueError: the memory of the episode is full")


def _run_failing(job: JobRunner, fake: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """Run the job with its train stage's Isaac Lab replaced by ``fake`` (which fails); return result.json."""

    def stage(library, install, device, cwd):
        return job._stream(fake, cwd, {}, None), None

    monkeypatch.setattr(job, "_train", stage)
    monkeypatch.setattr(runner_mod.packages, "verify_task", lambda task, python=None: task)
    monkeypatch.setattr(runner_mod.isaaclab_cli, "detect_isaaclab", lambda: runner_mod.isaaclab_cli.IsaacLabInstall(3))
    monkeypatch.setattr(runner_mod.isaaclab_cli, "resolve_device", lambda requested: "cpu")
    monkeypatch.setattr(runner_mod.packages.JobEnvironment, "create", classmethod(lambda cls, root: cls.current()))
    assert job.run() == 1
    return json.loads((tmp_path / "staging" / "result.json").read_text())


def test_out_of_memory_fails_the_job_naming_num_envs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job whose Isaac Lab dies of CUDA OOM ends with "lower numEnvs (8192 now) or use a larger GPU"."""
    spec = JobSpec.from_dict({**SPEC, "stagingUri": str(tmp_path / "staging")})
    job = JobRunner(spec, tmp_path / "work")
    fake = [sys.executable, "-c", "print('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1 GiB'); "
                                  "raise SystemExit(1)"]

    result = _run_failing(job, fake, tmp_path, monkeypatch)
    assert result["error"].startswith("the GPU ran out of memory (torch.OutOfMemoryError: CUDA out of memory")
    assert result["error"].endswith("lower numEnvs (8192 now) or use a larger GPU")
    assert result["seed"] == 1
    assert "ERROR: the GPU ran out of memory" in (tmp_path / "staging" / "runner.log").read_text()


def test_a_failed_training_reports_its_own_exception_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's env raising (a missing asset, say) ends the job with that exception in result.json's error, not
    only an exit code (the wait step, VAMS's cause and the runs view lead with it)."""
    spec = JobSpec.from_dict({**SPEC, "stagingUri": str(tmp_path / "staging")})
    job = JobRunner(spec, tmp_path / "work")
    missing = tmp_path / "my_custom_env" / "assets" / "robot.usda"
    fake = [sys.executable, "-c", f"print('[INFO] starting'); open({str(missing)!r})"]  # a real traceback

    result = _run_failing(job, fake, tmp_path, monkeypatch)
    assert result["error"] == (f"isaaclab train failed: FileNotFoundError: [Errno 2] No such file or directory: "
                               f"'{missing}' (exit 1; the traceback is in runner.log)")

