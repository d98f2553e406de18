"""Policy export without a simulator: each library's actor rebuilt from a real tiny training's checkpoint and
params/agent.yaml gives the library's own actions on recorded observations, in TorchScript and ONNX; the runner
exports in its own process, beside the upload, and a failed export never fails the job.

The checkpoints in data/runs/ come from 3-iteration trainings of the example env (16 envs, seed 1, on this CPU,
through the runner); data/cartpole_observations.json holds 224 observations of that env (record_observations.py).
The checks run in the Isaac Lab venv (torch and the RL libraries; the Airflow venv has neither).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DATA = HERE / "data"
RUNS = {
    "rsl_rl": DATA / "runs" / "rsl_rl" / "model_2.pt",
    "skrl": DATA / "runs" / "skrl" / "checkpoints" / "agent_96.pt",
    "rl_games": DATA / "runs" / "rl_games" / "nn" / "last_custom_cartpole_ep_3_rew__-4.591545_.pth",
}
needs_isaaclab = pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")


def _isaaclab(code_or_args: list[str], cwd: Path = REPO / "task_image") -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(ISAACLAB_PYTHON), *code_or_args], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@needs_isaaclab
@pytest.mark.parametrize("library", sorted(RUNS))
def test_exported_policy_gives_the_checkpoints_actions(tmp_path: Path, library: str) -> None:
    checkpoint = RUNS[library]
    run_dir = DATA / "runs" / library
    proc = _isaaclab([str(HERE / "export_check.py"), library, str(checkpoint), str(run_dir), str(tmp_path),
                      str(DATA / "cartpole_observations.json")])
    check = json.loads(proc.stdout.strip().splitlines()[-1])
    assert check["observations"] == 224 + 64 and check["action_shape"] == [288, 1]
    assert check["jit_max_diff"] <= 1e-6, check  # TorchScript: the same float32 operations
    assert check["onnx_max_diff"] <= 1e-5, check  # ONNX's reference evaluator: rounding only
    assert check["action_range"][0] < check["action_range"][1]  # the actions vary with the observations
    assert check["simulator_modules"] == [] and check["processes"] == [], check  # no Isaac Lab, no second process
    assert check["files"] == ["policy.pt", "policy.onnx"] and not list(tmp_path.glob("*.data"))  # one ONNX file
    # their sizes beside them (the registry's signature): the cartpole's 4 observations -> 1 action
    assert json.loads((tmp_path / "policy.json").read_text()) == {"inputs": [{"name": "obs", "shape": [-1, 4]}],
                                                                 "outputs": [{"name": "actions", "shape": [-1, 1]}]}


# what both runner scripts share: a train job of rsl_rl on a CPU whose Isaac Lab is ``fake`` (the run folder appears)
RUNNER_PRELUDE = r'''
import hashlib, json, os, shutil, sys, time
from pathlib import Path
from isaaclab_runner import runner as runner_mod
from isaaclab_runner.jobspec import JobSpec
from isaaclab_runner.runner import JobRunner

def make_job(job_id, tmp):
    spec = JobSpec.from_dict({"jobId": job_id, "mode": "train", "task": "T", "rlLibrary": "rsl_rl", "seed": 1,
                              "numEnvs": 16, "maxIterations": 3, "stagingUri": str(tmp / "staging")})
    return JobRunner(spec, tmp / "work")

def run_with(job, fake):
    job._stream = fake
    runner_mod.packages.verify_task = lambda task, python=None: task
    runner_mod.isaaclab_cli.detect_isaaclab = lambda: runner_mod.isaaclab_cli.IsaacLabInstall(3)
    runner_mod.isaaclab_cli.resolve_device = lambda requested: "cpu"
    runner_mod.packages.JobEnvironment.create = classmethod(lambda cls, root: cls.current())
    return job.run()

def copy_run(run_src, cwd):
    run_dir = Path(cwd) / "logs" / "rsl_rl" / "custom_cartpole" / "2026-01-01_00-00-00"
    shutil.copytree(run_src, run_dir)
    return run_dir
'''

RUNNER_EXPORT = RUNNER_PRELUDE + r'''
run_src, tmp, break_config = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
job = make_job("00000000-0000-0000-0000-000000000002", tmp)
commands = []

def fake_isaaclab(cmd, cwd, env, parse):  # "training" leaves a run folder as rsl_rl does
    commands.append(cmd)
    run_dir = copy_run(run_src, cwd)
    if break_config:
        (run_dir / "params" / "agent.yaml").write_text("actor: {}\n")
    return 0

code = run_with(job, fake_isaaclab)
print(json.dumps({"code": code, "processes": len(commands)}))
'''


@needs_isaaclab
def test_the_runner_exports_in_its_own_process_beside_the_upload(tmp_path: Path) -> None:
    proc = _isaaclab(["-c", RUNNER_EXPORT, str(DATA / "runs" / "rsl_rl"), str(tmp_path), "0"])
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome == {"code": 0, "processes": 1}  # training only: no second Isaac Lab process for the export
    staging = tmp_path / "staging"
    exported = sorted(p.name for p in (staging / "run" / "exported").iterdir())
    assert exported == ["policy.json", "policy.onnx", "policy.pt"]  # policy.json: its sizes (the registry)
    log = (staging / "runner.log").read_text()
    assert "Exported policy.pt, policy.onnx from model_2.pt in" in log and "(no simulator; beside the upload)" in log


@needs_isaaclab
def test_a_failed_export_leaves_the_job_successful(tmp_path: Path) -> None:
    proc = _isaaclab(["-c", RUNNER_EXPORT, str(DATA / "runs" / "rsl_rl"), str(tmp_path), "1"])
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": 0, "processes": 1}
    staging = tmp_path / "staging"
    assert json.loads((staging / "result.json").read_text())["status"] == "succeeded"
    assert not (staging / "run" / "exported").exists()
    log = (staging / "runner.log").read_text()
    assert "WARNING: exporting model_2.pt failed" in log and "published without exported/" in log


def test_agent_yaml_with_isaac_labs_tuples_loads() -> None:
    from isaaclab_runner.export import load_agent_config

    cfg = load_agent_config(DATA / "runs" / "rsl_rl" / "params" / "agent.yaml")
    assert cfg["actor"]["distribution_cfg"]["std_range"] == [1e-06, 1e6]  # written as !!python/tuple
    assert cfg["actor"]["hidden_dims"] == [32, 32]


RUNNER_EARLY = RUNNER_PRELUDE + r'''
run_src, tmp = Path(sys.argv[1]), Path(sys.argv[2])
os.environ["ISAACLAB_RUNNER_EXPORT_EARLY"] = "1"  # as on a GPU
job = make_job("00000000-0000-0000-0000-000000000005", tmp)
warmup = tmp / "work" / "export-warmup" / "warmup-0"

def fake_isaaclab(cmd, cwd, env, parse):  # "training": the run folder appears, then training goes on a while
    copy_run(run_src, cwd)
    deadline = time.monotonic() + 240
    while not (warmup / "policy.onnx").is_file() and time.monotonic() < deadline:
        time.sleep(0.2)  # the warm-up exports the checkpoint while Isaac Lab would still train
    return 0

code = run_with(job, fake_isaaclab)
digest = lambda folder: {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}
result = json.loads((tmp / "staging" / "result.json").read_text())
print(json.dumps({"code": code, "staged": digest(tmp / "staging" / "run" / "exported"), "warmup": digest(warmup),
                  "export_s": result["timings"]["export"]}))
'''


@needs_isaaclab
def test_an_export_started_with_training_writes_the_cold_exports_files(tmp_path: Path) -> None:
    """On a GPU the export's imports and a warm-up export of the run's first checkpoint happen while Isaac Lab
    trains; the files staged afterwards are byte for byte those of a cold export (here the warm-up's own, of the
    same checkpoint, the first export in the process)."""
    proc = _isaaclab(["-c", RUNNER_EARLY, str(DATA / "runs" / "rsl_rl"), str(tmp_path)])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 0
    assert set(out["staged"]) >= {"policy.pt", "policy.onnx"}
    assert out["staged"] == out["warmup"], out
    log = (tmp_path / "staging" / "runner.log").read_text()
    assert "(no simulator; beside the upload; started with training, " in log
