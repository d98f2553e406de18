"""Faults through the real DAG (Airflow's dag.test) on the local backend.

- A spot interruption, as the user meets it: SIGTERM the runner mid-training; attempt 2 resumes, and the run
  publishes the final checkpoint, the interrupted attempt's checkpoints under checkpoints/attempt-1/, and
  metrics.csv with every iteration 0..N-1 exactly once (real Isaac Lab training, kit-less on the CPU).
- A resubmitted job (the same DAG run cleared and run again) starts from empty staging: the runner's own resume
  lookup finds nothing of the failed job, which is archived, not published.
- A corrupt event file: the checkpoints still publish, the metrics problem is reported in metrics-problems.json.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pipeline_env import ISAACLAB_PYTHON, STAND_IN_EVENTS, stand_in_runner

DAG_ID = "isaac-lab-training"
_stamp = [datetime(2021, 1, 1, tzinfo=UTC)]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated DB, a private pipeline home with the example env package, fast polling, quick retries."""
    from pipeline_env import quick_retries, scoped_environ, task_policy

    home = tmp_path_factory.mktemp("faults-local")
    tests_set = ("AIRFLOW_VAR_ISAACLAB_OVERRIDES", "AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON")  # the tests below
    with scoped_environ({"ISAACLAB_PIPELINE_HOME": str(home), "AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S": "1"},
                        restore=tests_set):
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        from isaaclab_tools.cli import EXAMPLE_ENV, package_env

        package_env(EXAMPLE_ENV, home / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz")
        with task_policy(quick_retries):
            yield home


def _run(conf: dict[str, Any], when: datetime | None = None) -> tuple[Any, dict[str, str], str]:
    """Run the DAG at ``when`` (the same ``when`` again: the same run id, as a cleared run); return the run, its
    task states and the job UUID."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_tools.cli import load_dag

    if when is None:
        _stamp[0] += timedelta(minutes=1)
        when = _stamp[0]
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)
    run = load_dag().test(run_after=when, logical_date=when, run_conf=conf)
    assert run.run_id == run_id
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}, job_uuid(DAG_ID, run_id)


def _conf(home: Path, **training: Any) -> dict[str, Any]:
    return {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 16, "seed": 7, **training},
            "inputS3AssetFilePath": f"file://{home}/assets/custom_cartpole/",
            "outputS3Path": f"file://{home}/outputs"}


def _fake_interpreter(path: Path, body: str) -> Path:
    """The stand-in runner (pipeline_env) run by the Isaac Lab venv, so its body can call the runner's own code."""
    return stand_in_runner(path, body, ISAACLAB_PYTHON if ISAACLAB_PYTHON.exists() else sys.executable)


def _manifest_matches(out: Path) -> dict[str, Any]:
    manifest = json.loads((out / "manifest.json").read_text())
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert {e["path"] for e in manifest["files"]} == set(files) - {"manifest.json"}
    return manifest


# A spot interruption mid-training


def _runner_processes(job_id: str) -> list[int]:
    """The task runner's process of a job: ``<python> -m isaaclab_runner run --spec .../<job_id>/...``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if len(args) > 3 and args[1:3] == ["-m", "isaaclab_runner"] and any(job_id in a for a in args):
            pids.append(int(entry.name))
    return pids


def _interrupt_when(staging: Path, job_id: str, at_iteration: int, done: threading.Event, sent: list[int]) -> None:
    """SIGTERM the runner (as Batch signals the container) once progress.json reaches ``at_iteration``."""
    deadline = time.monotonic() + 900
    while not done.is_set() and time.monotonic() < deadline:
        try:
            progress = json.loads((staging / "progress.json").read_text())
        except (OSError, ValueError):
            progress = {}
        if progress.get("iteration", 0) >= at_iteration:
            for pid in _runner_processes(job_id):
                os.kill(pid, signal.SIGTERM)
                sent.append(progress["iteration"])
            if sent:
                return
        time.sleep(0.2)


@pytest.mark.e2e
@pytest.mark.isaaclab
def test_sigterm_mid_training_then_publish_has_the_final_checkpoint_and_every_step(home: Path) -> None:
    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from isaaclab_pipeline.config import job_uuid

    iterations, save_every = 30, 5
    os.environ["AIRFLOW_VAR_ISAACLAB_OVERRIDES"] = json.dumps([f"agent.save_interval={save_every}",
                                                               "agent.num_steps_per_env=64"])
    os.environ.pop("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", None)
    _stamp[0] += timedelta(minutes=1)
    when = _stamp[0]
    job_id = job_uuid(DAG_ID, DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when))
    done, sent = threading.Event(), []
    watcher = threading.Thread(target=_interrupt_when, args=(home / "staging" / job_id, job_id, 12, done, sent),
                               daemon=True)
    watcher.start()
    started = time.monotonic()
    try:
        run, states, _ = _run(_conf(home, maxIterations=iterations), when)
    finally:
        done.set()
        os.environ.pop("AIRFLOW_VAR_ISAACLAB_OVERRIDES", None)
    print(f"SIGTERM at iteration {sent}; DAG run took {time.monotonic() - started:.0f}s")
    assert sent, "the runner was never interrupted"
    assert str(run.state) == "success", states

    out = home / "outputs" / job_id
    manifest = _manifest_matches(out)
    assert (out / "checkpoints" / f"model_{iterations - 1}.pt").is_file()  # the final checkpoint
    older = sorted(p.name for p in (out / "checkpoints").glob("attempt-1/*.pt"))
    assert older, "attempt 2 saves again under the number it resumed from; attempt 1's copy is kept"
    assert [a["attempt"] for a in manifest["attempts"]][-1] == 2
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows if r.get("Perf/total_fps")]
    assert steps == list(range(iterations))  # every iteration once, across both attempts
    log = (out / "runner-log.txt").read_text()
    assert "resuming from" in log


# A resubmitted job


def test_a_resubmitted_job_does_not_resume_from_the_old_one(home: Path, tmp_path: Path) -> None:
    """Run 1 stages a final checkpoint and fails; the same run, cleared, is run again: its runner sees empty staging
    (the runner's own resume lookup finds nothing), and only its own files are published."""
    failing = _fake_interpreter(tmp_path / "failing", '''
stage("checkpoints/rsl_rl/cartpole/2026-01-01_00-00-00/model_4.pt", b"old job's final checkpoint")
stage("result.json", json.dumps({"jobId": spec["jobId"], "status": "failed", "exitCode": 1}).encode())
sys.exit(1)
''')
    recording = _fake_interpreter(tmp_path / "recording", '''
from isaaclab_runner import sync
point = sync.find_resume_checkpoint(spec["stagingUri"], spec["maxIterations"], r"model_(\\d+)\\.pt$")
seen = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
(spec_path.parent / "seen.json").write_text(json.dumps({"resume": point and point.uri, "staged": seen}))
stage_events()
stage("checkpoints/rsl_rl/cartpole/2026-01-02_00-00-00/model_0.pt", b"new job")
succeed(runDir="2026-01-02_00-00-00")
''')
    _stamp[0] += timedelta(minutes=1)
    when = _stamp[0]
    os.environ["AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON"] = str(failing)
    try:
        run, states, job_id = _run(_conf(home, maxIterations=5), when)
        assert str(run.state) == "failed" and states["wait_for_job"] == "failed", states
        assert (home / "staging" / job_id / "checkpoints").is_dir()
        os.environ["AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON"] = str(recording)
        run, states, again = _run(_conf(home, maxIterations=5), when)  # the same run id: a re-run
    finally:
        os.environ.pop("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", None)
    assert again == job_id and str(run.state) == "success", states
    [seen] = [json.loads(p.read_text()) for p in (home / "jobs").rglob("seen.json") if job_id in str(p)]
    assert seen == {"resume": None, "staged": [p for p in seen["staged"] if p == "spec.json"]}
    out = home / "outputs" / job_id
    _manifest_matches(out)
    assert (out / "checkpoints" / "model_0.pt").read_bytes() == b"new job"
    assert not list(out.rglob("model_4.pt"))  # the failed job's checkpoint is not published as this run's
    archived = list((home / "staging" / "superseded" / job_id).rglob("model_4.pt"))
    assert [p.read_bytes() for p in archived] == [b"old job's final checkpoint"]  # kept, out of the way


# A corrupt event file


def test_a_corrupt_event_file_still_publishes_the_checkpoints(home: Path, tmp_path: Path) -> None:
    name = next(p.name for p in STAND_IN_EVENTS.iterdir())
    runner = _fake_interpreter(tmp_path / "corrupting", f'''
data = bytearray(Path({str(STAND_IN_EVENTS / name)!r}).read_bytes())
data[len(data) // 2] ^= 0x01  # one bit flipped mid-file: a record fails its CRC
stage("run/{name}", bytes(data))
stage("checkpoints/rsl_rl/cartpole/2026-01-03_00-00-00/model_0.pt", b"m0")
stage("checkpoints/rsl_rl/cartpole/2026-01-03_00-00-00/model_4.pt", b"m4")
succeed()
''')
    os.environ["AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON"] = str(runner)
    try:
        run, states, job_id = _run(_conf(home, maxIterations=5))
    finally:
        os.environ.pop("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", None)
    assert str(run.state) == "success", states
    out = home / "outputs" / job_id
    _manifest_matches(out)
    assert (out / "checkpoints" / "model_4.pt").read_bytes() == b"m4"
    [problem] = json.loads((out / "metrics-problems.json").read_text())["problems"]
    assert problem["file"] == name and "CRC" in problem["reason"] and problem["recordsKept"] > 0
    with (out / "metrics.csv").open() as f:
        assert len(list(csv.DictReader(f))) > 0  # what precedes the bad record
