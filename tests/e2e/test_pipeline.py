"""End to end: the real DAG through Airflow's dag.test, with a tiny real Isaac Lab training on the CPU."""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated Airflow DB, a private pipeline home, fast polling, and the example env in the asset store."""
    from pipeline_env import dag_home

    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    # rsl_rl logs Train/mean_reward only once an episode has ended; 128 steps per iteration (16 by default)
    # lets the untrained cartpole fall within iteration 0. This also exercises the deployment overrides.
    with dag_home(tmp_path_factory.mktemp("pipeline"), {"overrides": '["agent.num_steps_per_env=128"]'}) as home:
        yield home


def _run(conf: dict):
    from isaaclab_tools.cli import load_dag

    dag = load_dag()
    run = dag.test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return run, states


def test_training_run_publishes_the_seed_layout(airflow_env: Path) -> None:
    from isaaclab_pipeline.config import job_uuid

    conf = {
        "workflowName": "isaac-lab-training",
        "parameters": {
            "trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 16, "maxIterations": 5,
                               "seed": 3},
            "inputS3AssetFilePath": f"file://{airflow_env}/assets/custom_cartpole/",
            "outputS3Path": f"file://{airflow_env}/outputs",
        },
    }
    run, states = _run(conf)
    assert str(run.state) == "success", states
    out = airflow_env / "outputs" / job_uuid("isaac-lab-training", run.run_id)

    # Layout
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "checkpoints/policy.pt" not in files  # the exported policy is not a checkpoint
    for expected in ("checkpoints/model_4.pt", "exported/policy.pt", "exported/policy.onnx", "metrics.csv",
                     "summary.json", "training-config.json",
                     "env-params.txt", "agent-params.txt", "runner-log.txt", "manifest.json"):
        assert expected in files, files
    assert any(f.startswith("tensorboard/events.out.tfevents") for f in files)

    # metrics.csv has Train/mean_reward for every iteration
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    # rsl_rl's "<tag>/time" scalars use seconds as their step, so rows are the union of both step kinds
    iterations = [int(r["step"]) for r in rows if r.get("Perf/total_fps")]
    assert iterations == [0, 1, 2, 3, 4]
    assert [int(r["step"]) for r in rows if r.get("Train/mean_reward")] == iterations
    rewards = [float(r["Train/mean_reward"]) for r in rows if r["step"] in map(str, iterations)]
    assert all(v == v for v in rewards)  # real numbers, no NaN

    # The manifest lists every other file with its real size and hash
    manifest = json.loads((out / "manifest.json").read_text())
    assert {e["path"] for e in manifest["files"]} == set(files) - {"manifest.json"}
    for entry in manifest["files"]:
        data = (out / entry["path"]).read_bytes()
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())

    # The normalized conf is published, and the runner log shows Isaac Lab's own command
    config = json.loads((out / "training-config.json").read_text())
    assert config["trainingConfig"]["numEnvs"] == 16 and config["trainingConfig"]["rlLibrary"] == "rsl_rl"
    log = (out / "runner-log.txt").read_text()
    assert "isaaclab train --rl_library rsl_rl --task Isaac-Custom-Cartpole-Direct" in log
    assert "agent.num_steps_per_env=128" in log


def test_bad_conf_fails_in_validate_without_running_anything(airflow_env: Path) -> None:
    """A wrapped conf passes the trigger form (``parameters`` is free-form) and is caught by validate_config."""
    conf = {"workflowName": "isaac-lab-training",
            "parameters": {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 0, "maxIteration": 5},
                           "outputS3Path": f"file://{airflow_env}/outputs"}}
    jobs_before = set((airflow_env / "jobs").glob("*"))
    run, states = _run(conf)
    assert str(run.state) == "failed"
    assert states["validate_config"] == "failed"
    assert all(states[t] in ("upstream_failed", "None") for t in states if t != "validate_config"), states
    assert set((airflow_env / "jobs").glob("*")) == jobs_before  # nothing was submitted


def test_out_of_range_conf_is_refused_at_trigger(airflow_env: Path) -> None:
    """A bare conf is checked by the Params derived from the schema before a run exists."""
    from airflow.sdk.definitions.param import ParamValidationError

    with pytest.raises(ParamValidationError, match="numEnvs|minimum"):
        _run({"trainingConfig": {"task": "T", "numEnvs": 0}, "outputS3Path": "/tmp/out"})
