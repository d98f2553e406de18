"""The guide's first section, "Using Built-in Environments", offline: the built-in cartpole tasks trained and
evaluated through the real DAG on the local backend, their assets served by an asset mirror filled with the
generated stand-ins (examples/asset_mirror: not NVIDIA's files, which this machine cannot reach).

The guide's Training Mode conf with its task left out trains the default ``Isaac-Cartpole-v0`` (Isaac Lab 3's
``Isaac-Cartpole``); ``Isaac-Cartpole-Direct-v0`` trains the same way and its checkpoint is evaluated with the
guide's Option 2 (``policyS3Uri``) for exactly ``numEpisodes`` episodes. Each job syncs the task's files from the
mirror into the host cache first (the second job finds them there).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "examples" / "confs" / "user-guide"

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")]


def _isaaclab(*args: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(ISAACLAB_PYTHON), *args], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A pipeline home whose asset mirror holds the stand-ins (what `make standin-assets` does), and a fresh host
    cache."""
    from pipeline_env import dag_home, scoped_environ

    root = tmp_path_factory.mktemp("builtin")
    _isaaclab(str(REPO / "examples" / "asset_mirror" / "build_standins.py"), "--out", str(root / "standins"))
    _isaaclab("-m", "isaaclab_runner", "mirror-assets", "--mirror", str(root / "mirror"), "--upstream",
              str(root / "standins"), "--stand-in", "--tasks", "Isaac-Cartpole-v0", "Isaac-Cartpole-Direct-v0")
    with scoped_environ({"ISAACLAB_RUNNER_ASSET_CACHE": str(root / "host-cache")}), dag_home(
            root / "home", {"overrides": "[]", "asset_mirror_uri": str(root / "mirror")}, example_env=False) as home:
        yield home


def _run(conf: dict) -> tuple[str, dict[str, str], Path]:
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_pipeline.storage import local_path
    from isaaclab_tools.cli import load_dag, output_location

    run = load_dag().test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    return str(run.state), states, local_path(output_location(conf)) / job_uuid("isaac-lab-training", run.run_id)


def _small(conf: dict, **tc: object) -> dict:
    """The guide's conf at a CPU's size (numbers only; every other field as the guide writes it)."""
    return {**conf, "trainingConfig": {**conf["trainingConfig"], **tc}}


def test_the_guides_training_conf_without_a_task_trains_the_default_cartpole(home: Path) -> None:
    conf = json.loads((GUIDE / "train-builtin.json").read_text())
    conf["trainingConfig"].pop("task")  # the guide's default: Isaac-Cartpole-v0
    state, states, out = _run(_small(conf, numEnvs=16, maxIterations=2, seed=3))
    assert state == "success", states
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"checkpoints/model_1.pt", "metrics.csv", "summary.json", "training-config.json", "job-result.json",
            "exported/policy.pt", "manifest.json", "runner-log.txt"} <= files, files
    assert json.loads((out / "training-config.json").read_text())["trainingConfig"]["task"] == "Isaac-Cartpole-v0"
    result = json.loads((out / "job-result.json").read_text())
    assert result["status"] == "succeeded" and result["iterations"] == 2
    assert result["assetMirror"]["fetched"] == 2 and result["assetMirror"]["cached"] == 0  # a fresh host
    log = (out / "runner-log.txt").read_text()
    assert "--task Isaac-Cartpole " in log and "ISAACSIM_ASSET_ROOT=" in log
    assert "metrics.csv" in files and "Train/mean_reward" in (out / "metrics.csv").read_text().splitlines()[0]


def test_the_direct_cartpole_trains_and_its_policy_is_evaluated(home: Path) -> None:
    train = {"trainingConfig": {"mode": "train", "task": "Isaac-Cartpole-Direct-v0", "numEnvs": 16, "maxIterations": 2,
                                "rlLibrary": "rsl_rl", "seed": 5}, "computeConfig": {"numNodes": 1}}
    state, states, out = _run(train)
    assert state == "success", states
    checkpoint = out / "checkpoints" / "model_1.pt"
    assert checkpoint.is_file()
    assert json.loads((out / "job-result.json").read_text())["assetMirror"]["fetched"] == 0  # cached by the first

    conf = json.loads((GUIDE / "evaluate-policy-s3-uri.json").read_text())
    conf = _small(conf, task="Isaac-Cartpole-Direct-v0", policyS3Uri=f"file://{checkpoint}", numEnvs=4, numEpisodes=6)
    state, states, out = _run(conf)
    assert state == "success", states
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 6
    assert len((out / "episodes.csv").read_text().strip().splitlines()) == 1 + 6
    assert json.loads((out / "evaluation-config.json").read_text())["checkpoint"].endswith("model_1.pt")
