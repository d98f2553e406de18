"""Fault test with real training on the local backend: SIGTERM the runner mid-training; the retry resumes.

The runner exits 143 after a SIGTERM (checkpoints flushed to staging), the local backend starts attempt 2 with
ISAACLAB_JOB_ATTEMPT=2, and the runner resumes from the latest staged checkpoint (``sync.find_resume_checkpoint``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from isaaclab_pipeline.backends import JobState
from isaaclab_pipeline.backends.local import LocalBackend
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"

JOB = "9a0c1a9e-3333-4444-8555-a66677778888"
MAX_ITERATIONS = 40
SAVE_INTERVAL = 5


def _runner_pid(jdir: Path) -> int:
    """The runner is the wrapper shell's child; SIGTERM it alone, as Batch signals the container's process."""
    wrapper = int((jdir / "pid").read_text())
    children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    return int(children[0])


@pytest.mark.isaaclab
@pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv")
def test_sigterm_mid_training_resumes_from_the_staged_checkpoint(tmp_path: Path) -> None:
    from isaaclab_tools.cli import package_env

    package = package_env(EXAMPLE_ENV, tmp_path / "assets" / "custom_cartpole.tar.gz")
    staging = tmp_path / "staging" / JOB
    spec = JobSpec(job_id=JOB, mode="train", task="Isaac-Custom-Cartpole-Direct", rl_library="rsl_rl", seed=1,
                   num_envs=16, max_iterations=MAX_ITERATIONS, staging_uri=str(staging), device="cpu",
                   env_package_uri=str(package),
                   overrides=[f"agent.save_interval={SAVE_INTERVAL}", "agent.num_steps_per_env=64"])
    backend = LocalBackend(PipelineSettings(isaaclab_python=str(ISAACLAB_PYTHON), local_max_attempts=3),
                           root=tmp_path / "jobs")
    handle = backend.submit(spec)
    jdir = tmp_path / "jobs" / JOB
    # SIGTERM once training is past two checkpoints (iteration >= 12 of 40; progress.json lags by up to ~2 s)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        progress = json.loads((staging / "progress.json").read_text()) if (staging / "progress.json").exists() else {}
        if progress.get("iteration", 0) >= 12:
            break
        assert not backend.status(handle).state.done, (jdir / "stdout.log").read_text()[-3000:]
        time.sleep(0.2)
    interrupted_at = progress["iteration"]
    os.kill(_runner_pid(jdir), signal.SIGTERM)
    while time.monotonic() < deadline and not (status := backend.status(handle)).state.done:
        time.sleep(0.5)
    log = (jdir / "stdout.log").read_text()
    assert status.state == JobState.SUCCEEDED, log[-3000:]
    assert "[backend] attempt 1 exited with 143 (interrupted); starting attempt 2" in log
    assert (jdir / "attempt").read_text().strip() == "2"
    # attempt 2 started from the latest staged checkpoint: at most one save interval was repeated
    first, second = log.split("starting attempt 2", 1)
    last_done = max(int(i) for i in re.findall(r"Learning iteration (\d+)/", first))
    resumed = re.search(r"Learning iteration (\d+)/", second)
    assert resumed, second[-3000:]
    first_iteration = int(resumed.group(1))
    assert interrupted_at <= last_done + 1 < MAX_ITERATIONS, "the SIGTERM must land mid-training"
    assert last_done - SAVE_INTERVAL <= first_iteration <= last_done + 1
    # and finished where an uninterrupted run ends (rsl_rl 5 numbers the last checkpoint maxIterations - 1)
    staged = sorted(int(m.group(1)) for p in staging.rglob("model_*.pt") if (m := re.search(r"model_(\d+)", p.name)))
    assert staged[-1] == MAX_ITERATIONS - 1
    # each attempt's timings are kept (issue 25); the top level sums them
    timings = json.loads((staging / "result.json").read_text())["timings"]
    assert [a["attempt"] for a in timings["attempts"]] == [1, 2]
    assert all(a["training"] > 0 and a["total"] > a["training"] for a in timings["attempts"])
    assert timings["total"] == pytest.approx(sum(a["total"] for a in timings["attempts"]), abs=0.01)
    assert timings["attempts"][1]["startedAt"] >= timings["attempts"][0]["finishedAt"] - 1
    assert log.rstrip().splitlines()[-1].startswith("[runner] Timings: ") and log.rstrip().endswith("(2 attempts)")
