"""Issue 25 end to end: the real DAG (dag.test, local backend, a tiny real training) leaves every timing in
job-result.json, they add up to the job's wall time, and the wait step's log ends with the timings line; and the
event file reaches staging while the job trains, growing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"

pytestmark = pytest.mark.e2e
PHASES = ("queueWait", "runnerStart", "fetch", "install", "kernelCacheRestore", "isaacLabStart", "training",
          "export", "upload", "other", "total")
# enough iterations for several syncs (1 s apart) while training, short ones (16 steps each) to keep it cheap
ITERATIONS = 20


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from pipeline_env import dag_home

    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    with dag_home(tmp_path_factory.mktemp("pipeline"), {"overrides": '["agent.num_steps_per_env=64"]'}) as home:
        yield home


def test_job_result_has_every_timing_and_the_log_ends_with_them(airflow_env: Path,
                                                                 capfd: pytest.CaptureFixture[str]) -> None:
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_tools.cli import load_dag

    conf = {"parameters": {
        "trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 16, "maxIterations": 5, "seed": 3},
        "inputS3AssetFilePath": f"file://{airflow_env}/assets/custom_cartpole/",
        "outputS3Path": f"file://{airflow_env}/outputs"}}
    run = load_dag().test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states
    job_id = job_uuid("isaac-lab-training", run.run_id)
    out = airflow_env / "outputs" / job_id

    timings = json.loads((out / "job-result.json").read_text())["timings"]
    assert set(PHASES) <= set(timings), timings
    assert len(timings["attempts"]) == 1 and timings["attempts"][0]["queueWait"] == timings["queueWait"]
    assert timings["training"] > 0 and timings["install"] > 0 and timings["isaacLabStart"] > 0
    assert timings["fetch"] >= 0 and timings["upload"] > 0  # fetch: a local copy of a small archive
    # the phases add up to the job's wall time as the backend saw it (the job folder's pid → exit_code)
    jdir = airflow_env / "jobs" / job_id
    wall = (jdir / "exit_code").stat().st_mtime - (jdir / "pid").stat().st_mtime
    phases = sum(timings[k] for k in PHASES if k not in ("queueWait", "total"))
    assert abs(phases - timings["total"]) < 0.01
    assert abs(timings["queueWait"] + phases - wall) <= 0.05 * wall, (phases, timings["queueWait"], wall)
    assert timings["other"] < 0.05 * wall  # the named phases hold nearly all of it

    # the job's log ends with the runner's line; the wait step's task log with the completed one (queue wait)
    assert (out / "runner-log.txt").read_text().splitlines()[-1].startswith("[runner] Timings: runner start ")
    # (dag.test prints the task logs; the wait operator's own lines carry its logger's name)
    wait_lines = [line for line in capfd.readouterr().out.splitlines()
                  if "[airflow.task.operators.isaaclab_pipeline.operators.WaitForIsaacLabJobOperator]" in line]
    assert wait_lines and "] Timings: queue " in wait_lines[-1], wait_lines[-5:]
    assert f"| total {timings['total']:.1f}s " in wait_lines[-1]

    # summed per run in summary.json (the runs view reads it from there)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timings"]["total"] == timings["total"] and summary["timings"]["attempts"] == 1
    assert "gpu" not in summary  # no GPU here: no gpu.csv, no figures, no error
    assert not (out / "gpu.csv").exists()


@pytest.mark.isaaclab
def test_staging_holds_the_event_file_growing_while_the_job_trains(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from isaaclab_pipeline.backends.local import LocalBackend
    from isaaclab_pipeline.jobspec import JobSpec
    from isaaclab_pipeline.metrics import read_run
    from isaaclab_pipeline.settings import PipelineSettings
    from isaaclab_tools.cli import package_env

    monkeypatch.setenv("ISAACLAB_RUNNER_EVENTS_SYNC_S", "1")
    monkeypatch.setenv("ISAACLAB_RUNNER_EXPORT", "0")
    job = "9a0c1a9e-2525-4444-8555-a66677778888"
    package = package_env(EXAMPLE_ENV, tmp_path / "assets" / "custom_cartpole.tar.gz")
    staging = tmp_path / "staging" / job
    spec = JobSpec(job_id=job, mode="train", task="Isaac-Custom-Cartpole-Direct", rl_library="rsl_rl", seed=1,
                   num_envs=16, max_iterations=ITERATIONS, staging_uri=str(staging), device="cpu",
                   env_package_uri=str(package), overrides=["agent.num_steps_per_env=16"])
    backend = LocalBackend(PipelineSettings(isaaclab_python=str(ISAACLAB_PYTHON)), root=tmp_path / "jobs")
    handle = backend.submit(spec)
    sizes: list[int] = []
    mid_run_iterations: list[int] = []
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and not (staging / "result.json").exists():
        events = list((staging / "run").glob("events.out.tfevents*")) if (staging / "run").is_dir() else []
        if events and (not sizes or events[0].stat().st_size != sizes[-1]):
            sizes.append(events[0].stat().st_size)
            # what a mid-run reader (tensorboard --logdir <staging>) sees is readable: the iterations so far
            mid_run_iterations.append(len(read_run(events[0]).series.get("Perf/total_fps", ())))
        assert not backend.status(handle).state.done, (tmp_path / "jobs" / job / "stdout.log").read_text()[-3000:]
        time.sleep(0.3)
    while not backend.status(handle).state.done and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(sizes) >= 3 and sizes == sorted(sizes), sizes  # staged while training, growing
    # read while training: some iterations, not yet all (the sync's final flush then stages the whole file)
    assert any(0 < n < ITERATIONS for n in mid_run_iterations), mid_run_iterations
    assert mid_run_iterations == sorted(mid_run_iterations), mid_run_iterations
    # the final copy is complete: every iteration, read once by the convert step
    final = read_run(staging / "run")
    assert len(final.files) == 1
    assert final.series["Perf/total_fps"].steps.tolist() == list(range(ITERATIONS))
    assert (staging / "run" / final.files[0].name).stat().st_size >= sizes[-1]
