"""The policy registry through the real DAG (``dag.test``) and a real ``mlflow server`` (SQLite, loopback):

train → the exported policy registered as version 1 with its lineage tags and signature → an evaluation naming
``models:/<name>/1`` resolves it before any GPU time, runs, and logs its scores on that version → a resume from
``models:/<name>/1`` continues the iteration count (and the optimizer) → a warm-start from the version's alias starts
at iteration 0 with the same weights and a fresh optimizer. One tiny training (16 envs, 2 iterations) is shared by
every check; the checkpoints are read with the Isaac Lab venv's torch (the Airflow venv has none).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow_env import running_mlflow_server
from pipeline_env import ISAACLAB_PYTHON

TASK = "Isaac-Custom-Cartpole-Direct"
MODEL = "custom-cartpole"
ALIAS = "candidate"
DAG_ID = "isaac-lab-training"
# lr 0 and a fixed schedule: the warm-start's first checkpoint holds exactly the weights it started from
FROZEN = ["agent.algorithm.learning_rate=0.0", "agent.algorithm.schedule=fixed"]

pytestmark = [pytest.mark.isaaclab,
              pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")]

READ_CHECKPOINT = r'''
import json, sys, torch
out = {}
for path in sys.argv[1:]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt["optimizer_state_dict"]["state"]
    out[path] = {"iter": ckpt["iter"], "adamSteps": max(int(s["step"]) for s in state.values()) if state else 0,
                 "actor": {k: v.flatten().tolist() for k, v in ckpt["actor_state_dict"].items()}}
print(json.dumps(out))
'''


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, mlflow_uri: str) -> Iterator[Path]:
    """A pipeline home tracking to the server; the experiments journey's overrides (128 steps per iteration)."""
    from pipeline_env import dag_home

    variables = {"overrides": '["agent.num_steps_per_env=128", "agent.save_interval=50"]',
                 "mlflow_tracking_uri": mlflow_uri}
    with dag_home(tmp_path_factory.mktemp("registry"), variables) as home:
        yield home


def _conf(home: Path, alias: bool = False, **training: Any) -> dict[str, Any]:
    return {"trainingConfig": {"task": TASK, "numEnvs": 16, "maxIterations": 2, **training},
            "registry": {"modelName": MODEL, **({"alias": ALIAS} if alias else {})},
            "inputS3AssetFilePath": f"file://{home}/assets/custom_cartpole/", "outputS3Path": f"file://{home}/outputs"}


def _run(home: Path, conf: dict[str, Any]) -> Path:
    """Run the DAG on ``conf``; every task must succeed; return the run's published folder."""
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_tools.cli import load_dag

    run = load_dag().test(run_conf=conf)
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) <= {"success", "skipped"}, states
    out = home / "outputs" / job_uuid(DAG_ID, run.run_id)
    assert (out / "manifest.json").is_file()
    return out


def _checkpoints(out: Path) -> dict[int, Path]:
    return {int(p.stem.split("_")[1]): p for p in (out / "checkpoints").glob("model_*.pt")}


def _read(*paths: Path) -> dict[str, Any]:
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", READ_CHECKPOINT, *map(str, paths)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(home: Path, mlflow_uri: str) -> dict[str, Any]:
    """One tiny training through the DAG, registered as version 1 (shared by every check below)."""
    out = _run(home, _conf(home, alias=True))  # the alias stays on version 1: the later runs move none
    return {"out": out, "jobId": out.name}


def test_training_registers_its_policy_with_lineage(trained: dict[str, Any], home: Path, mlflow_uri: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_uri)
    version = client.get_model_version(MODEL, "1")
    assert client.get_model_version_by_alias(MODEL, ALIAS).version == "1"
    tags = version.tags
    assert tags["isaaclab.jobId"] == trained["jobId"]
    conf = json.loads(tags["isaaclab.conf"])
    assert conf["trainingConfig"]["task"] == TASK and conf["trainingConfig"]["maxIterations"] == 2
    package = home / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz"
    assert tags["isaaclab.envPackageSha256"] == hashlib.sha256(package.read_bytes()).hexdigest()
    assert tags["isaaclab.isaacLabVersion"] == "3.0.0"
    assert set(json.loads(tags["isaaclab.libraryVersions"])) == {"torch", "rsl-rl-lib"}
    summary = json.loads((trained["out"] / "summary.json").read_text())
    assert float(tags["metric.Train/mean_reward"]) == summary["tags"]["Train/mean_reward"]["last"]
    last = max(_checkpoints(trained["out"]))
    assert tags["isaaclab.checkpoint"] == f"checkpoint/model_{last}.pt"
    # the version's folder: TorchScript, ONNX, the checkpoint, Isaac Lab's params, the signature (4 obs -> 1 action)
    files = {a.path for a in client.list_artifacts(version.run_id, "policy")}
    assert {"policy/policy.pt", "policy/policy.onnx", "policy/env-params.txt", "policy/agent-params.txt",
            "policy/MLmodel", "policy/checkpoint"} <= files
    mlflow.set_tracking_uri(mlflow_uri)
    signature = mlflow.models.get_model_info(f"models:/{MODEL}/1").signature
    assert [(s.name, s.shape) for s in signature.inputs.inputs] == [("obs", (-1, 4))]
    assert [(s.name, s.shape) for s in signature.outputs.inputs] == [("actions", (-1, 1))]


def test_evaluating_a_registered_version_logs_its_scores_on_it(trained: dict[str, Any], home: Path,
                                                               mlflow_uri: str) -> None:
    from mlflow import MlflowClient

    conf = _conf(home, mode="evaluate", checkpointPath=f"models:/{MODEL}/1", numEpisodes=16)
    out = _run(home, conf)
    scores = json.loads((out / "summary.json").read_text())
    assert scores["episodes"] == 16
    config = json.loads((out / "evaluation-config.json").read_text())
    registry = config["resolved"]["registry"]["checkpointPath"]
    assert (registry["source"], registry["registeredModel"], registry["registeredVersion"]) == (
        f"models:/{MODEL}/1", MODEL, "1")
    assert registry["sourceJobId"] == trained["jobId"]
    version = MlflowClient(tracking_uri=mlflow_uri).get_model_version(MODEL, "1")
    assert float(version.tags["eval.returnMean"]) == pytest.approx(scores["return"]["mean"])
    assert version.tags["eval.episodes"] == "16"
    run = MlflowClient(tracking_uri=mlflow_uri).get_run(version.tags["eval.runId"])
    assert run.data.tags["isaaclab.registeredVersion"] == "1"
    assert run.data.tags["isaaclab.outputUri"].endswith(out.name)


def test_resume_from_the_registry_continues_the_iteration_count(trained: dict[str, Any], home: Path) -> None:
    first = _checkpoints(trained["out"])
    out = _run(home, _conf(home, resumeCheckpoint=f"models:/{MODEL}/1", init="resume"))
    resumed = _checkpoints(out)
    # rsl_rl's learn() starts at the checkpoint's iteration index (model_1: indexes 0 and 1 done) and runs
    # maxIterations more, numbered on from it: indexes 1 and 2, not 0 and 1 again
    assert min(resumed) > max(first) and max(resumed) == max(first) + 2 - 1
    facts = _read(first[max(first)], resumed[max(resumed)])
    before, after = facts[str(first[max(first)])], facts[str(resumed[max(resumed)])]
    assert (before["iter"], after["iter"]) == (max(first), max(resumed))
    assert after["adamSteps"] == 2 * before["adamSteps"] > 0  # the optimizer resumed: 2 iterations' steps on top of 2


def test_warm_start_from_the_alias_starts_at_zero_with_the_same_weights(trained: dict[str, Any], home: Path) -> None:
    first = _checkpoints(trained["out"])
    out = _run(home, _conf(home, resumeCheckpoint=f"models:/{MODEL}/{ALIAS}", init="warm-start", overrides=FROZEN))
    warm = _checkpoints(out)
    assert min(warm) == 0 and max(warm) == 1  # the iteration count starts again at 0
    facts = _read(first[max(first)], warm[0])
    source, start = facts[str(first[max(first)])], facts[str(warm[0])]
    assert start["iter"] == 0
    assert start["actor"] == source["actor"]  # the policy's parameters are the registered version's
    assert start["adamSteps"] * 2 == source["adamSteps"] > 0  # a fresh optimizer: one iteration's steps, not 1 + 2
    config = json.loads((out / "training-config.json").read_text())
    assert config["resolved"]["registry"]["resumeCheckpoint"]["registeredVersion"] == "1"  # the alias's version
