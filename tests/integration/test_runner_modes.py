"""The task runner for real on this CPU: every RL library trains and evaluates, resume continues, every package
format installs (and one of each format group trains). Isaac Lab runs one process at a time, tiny settings.

Each test runs ``python -m isaaclab_runner run --spec`` in the Isaac Lab venv, as the local backend does, and
checks the staging folder it leaves (the contract with the Airflow side). The example env package is rebuilt in
every format with its own version label (``1.0.0+<format>``), so each test proves its format was installed.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"
TASK = "Isaac-Custom-Cartpole-Direct"
# rl_games' minibatch must divide num_envs x horizon_length (16 x 32); the example yaml's 16384 suits 4096 envs
RL_GAMES_SMALL = ["agent.params.config.minibatch_size=128"]

pytestmark = [
    pytest.mark.isaaclab,
    pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)"),
]


def _project(tmp: Path, label: str) -> Path:
    """Copy the example project with version ``1.0.0+<label>``; build leftovers left out."""
    dest = tmp / f"src-{label}" / "custom_cartpole"
    shutil.copytree(EXAMPLE_ENV, dest, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pyproject = dest / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "1.0.0"', f'version = "1.0.0+{label}"'))
    return dest


def build_package(tmp: Path, fmt: str) -> Path:
    """Build the example env package as ``fmt``: tar.gz / tgz / zip of the project folder, sdist, or wheel."""
    project = _project(tmp, fmt.replace(".", ""))
    out = tmp / "dist" / fmt
    out.mkdir(parents=True)
    if fmt in ("tar.gz", "tgz"):  # the seed's `tar -czf pkg.tar.gz -C parent folder`
        archive = out / f"custom_cartpole.{fmt}"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(project, arcname=project.name)
        return archive
    if fmt == "zip":
        archive = out / "custom_cartpole.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(project.rglob("*")):
                zf.write(path, Path(project.name, path.relative_to(project)))
        return archive
    # sdist and wheel through setuptools' PEP 517 backend (what `python -m build` calls), no index needed
    hook = "build_sdist" if fmt == "sdist" else "build_wheel"
    code = f"import setuptools.build_meta as b; print(b.{hook}({str(out)!r}))"
    subprocess.run([str(ISAACLAB_PYTHON), "-c", code], cwd=project, check=True, capture_output=True)
    return next(out.iterdir())


def run_job(tmp: Path, name: str, export: bool = False, **fields: object) -> tuple[int, Path, str]:
    """Run one job spec through the runner; return (exit code, staging folder, runner output)."""
    staging = tmp / name / "staging"
    spec = {"jobId": str(uuid.uuid4()), "task": TASK, "seed": 1, "numEnvs": 16, "maxIterations": 3,
            "stagingUri": str(staging), "device": "cpu", **fields}
    spec_path = tmp / name / "spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["ISAACLAB_RUNNER_EXPORT"] = "1" if export else "0"  # the trainings export; other jobs need not
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-m", "isaaclab_runner", "run", "--spec", str(spec_path),
                           "--workdir", str(tmp / name / "work")], capture_output=True, text=True, env=env,
                          timeout=600)
    return proc.returncode, staging, proc.stdout + proc.stderr


def package_of(tmp: Path) -> Path:
    """A package for jobs that need the example task but test no format: each job has its own venv."""
    archive = tmp / "dist" / "tar.gz" / "custom_cartpole.tar.gz"
    return archive if archive.exists() else build_package(tmp, "tar.gz")


def installed(out: str, fmt: str) -> bool:
    """True if this job's pip install put in the package built as ``fmt`` (its version label says which).

    The job's own pip output is checked, not the venv afterwards: other test runs share the Isaac Lab venv.
    """
    return f"Successfully installed isaaclab-custom-cartpole-1.0.0+{fmt.replace('.', '')}" in out


def episodes(staging: Path) -> list[dict[str, str]]:
    with (staging / "run" / "evaluation" / "episodes.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runner-modes")


def staged_checkpoint(staging: Path, name: str) -> Path:
    """A checkpoint of a finished job, where result.json says it was staged."""
    return staging / json.loads((staging / "result.json").read_text())["stagedCheckpoints"][name]


@pytest.fixture(scope="module")
def trained(tmp: Path) -> dict[str, Path]:
    """Staging folders of the three libraries' tiny trainings, each from another package format."""
    return {}


@pytest.mark.parametrize(("library", "fmt", "overrides", "checkpoint_rx"), [
    ("rsl_rl", "tar.gz", [], r"^model_\d+\.pt$"),
    ("skrl", "wheel", [], r"^checkpoints/(agent_\d+|best_agent)\.pt$"),
    ("rl_games", "sdist", RL_GAMES_SMALL, r"^nn/.+\.pth$"),
])
def test_train_then_evaluate_exactly_n_episodes(tmp: Path, trained: dict, library: str, fmt: str,
                                                overrides: list[str], checkpoint_rx: str) -> None:
    package = build_package(tmp, fmt)
    code, staging, out = run_job(tmp, f"train-{library}", export=True, mode="train",
                                 rlLibrary=library, envPackageUri=str(package), overrides=overrides)
    assert code == 0, out[-4000:]
    assert installed(out, fmt), out[-3000:]  # this format was what got installed
    result = json.loads((staging / "result.json").read_text())
    assert result["status"] == "succeeded"
    assert result["checkpoints"] and all(re.match(checkpoint_rx, c) for c in result["checkpoints"]), result
    # each checkpoint crosses the wire once: staged by the sync thread, not uploaded again with the run folder
    staged = result["stagedCheckpoints"]
    assert set(staged) == set(result["checkpoints"])
    assert all(path.startswith("checkpoints/") and (staging / path).is_file() for path in staged.values()), staged
    again = [p for pat in ("*.pt", "*.pth") for p in (staging / "run").rglob(pat) if "exported" not in p.parts]
    assert not again, again
    assert list((staging / "run").rglob("events.out.tfevents*")), "no TensorBoard events: no metrics.csv"
    progress = json.loads((staging / "progress.json").read_text())
    assert progress["iteration"] == 3 and progress["state"] == "succeeded"
    # the exported policy robotics teams deploy: rebuilt in the runner's process, no second Isaac Lab process
    # policy.json: the policy's input and output sizes (the registry's signature)
    assert sorted(p.name for p in (staging / "run" / "exported").iterdir()) == ["policy.json", "policy.onnx",
                                                                                "policy.pt"]
    assert "(no simulator; beside the upload)" in out and "isaaclab_runner.evaluate" not in out, out[-3000:]
    trained[library] = staging

    checkpoint = staging / staged[result["checkpoints"][-1]]
    code, ev, out = run_job(tmp, f"eval-{library}", mode="evaluate", rlLibrary=library, numEnvs=4, numEpisodes=6,
                            checkpointUri=str(checkpoint), overrides=overrides, envPackageUri=str(package))
    assert code == 0, out[-4000:]
    rows = episodes(ev)
    assert len(rows) == 6  # exactly numEpisodes, spread 2/2/1/1 over the 4 envs
    assert sorted(int(r["env"]) for r in rows) == [0, 0, 1, 1, 2, 3]
    summary = json.loads((ev / "run" / "evaluation" / "summary.json").read_text())
    returns = [float(r["return"]) for r in rows]
    assert summary["episodes"] == 6
    assert summary["return"]["mean"] == pytest.approx(sum(returns) / 6)
    assert summary["return"]["min"] == pytest.approx(min(returns))
    assert 0 < summary["length"]["min"] <= summary["length"]["max"] <= 420  # 7 s episodes at 60 Hz
    config = json.loads((ev / "run" / "evaluation" / "evaluation-config.json").read_text())
    assert (config["numEpisodes"], config["numEnvs"], config["rlLibrary"]) == (6, 4, library)
    assert list((ev / "run").glob("events.out.tfevents*"))
    assert json.loads((ev / "result.json").read_text())["episodes"] == 6


@pytest.mark.parametrize("library", ["rsl_rl", "skrl", "rl_games"])
def test_exported_policy_gives_the_checkpoints_actions(tmp: Path, trained: dict, library: str) -> None:
    """The export of a real training (above) acts as the checkpoint does in the library's own inference path, on
    recorded observations of this env (tests/unit/runner/export_check.py: TorchScript and ONNX)."""
    if library not in trained:
        pytest.skip(f"needs the {library} training above")
    staging = trained[library]
    result = json.loads((staging / "result.json").read_text())
    checkpoint = staging / result["stagedCheckpoints"][result["checkpoints"][-1]]
    if library == "skrl":  # the last timestep's checkpoint, not best_agent.pt
        checkpoint = staging / max((v for k, v in result["stagedCheckpoints"].items() if "best" not in k),
                                   key=lambda v: int(re.search(r"(\d+)\.pt$", v).group(1)))
    check_dir = REPO / "tests" / "unit" / "runner"
    proc = subprocess.run([str(ISAACLAB_PYTHON), str(check_dir / "export_check.py"), library, str(checkpoint),
                           str(staging / "run"), str(tmp / f"export-{library}"),
                           str(check_dir / "data" / "cartpole_observations.json")],
                          capture_output=True, text=True, timeout=300, cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-3000:]
    check = json.loads(proc.stdout.strip().splitlines()[-1])
    assert check["jit_max_diff"] <= 1e-6 and check["onnx_max_diff"] <= 1e-5, check
    assert check["simulator_modules"] == [] and check["processes"] == [], check
    # what the runner exported after training is that same policy
    with_runner = subprocess.run([str(ISAACLAB_PYTHON), "-c", (
        "import json, sys, torch; obs = torch.tensor(json.load(open(sys.argv[3]))['observations']); "
        "a, b = (torch.jit.load(p)(obs) for p in sys.argv[1:3]); print(float((a - b).abs().max()))"),
        str(staging / "run" / "exported" / "policy.pt"), str(tmp / f"export-{library}" / "policy.pt"),
        str(check_dir / "data" / "cartpole_observations.json")], capture_output=True, text=True, timeout=300)
    assert with_runner.returncode == 0 and float(with_runner.stdout.strip()) == 0.0, with_runner.stderr[-2000:]


def test_resume_continues_the_iteration_count(tmp: Path, trained: dict) -> None:
    if "rsl_rl" not in trained:
        pytest.skip("needs the rsl_rl training above")
    checkpoint = staged_checkpoint(trained["rsl_rl"], "model_2.pt")  # the last of iterations 0..2
    package = build_package(tmp, "zip")
    code, staging, out = run_job(tmp, "resume", mode="train", rlLibrary="rsl_rl", maxIterations=2,
                                 envPackageUri=str(package), resumeCheckpointUri=f"file://{checkpoint}")
    assert code == 0, out[-4000:]
    assert installed(out, "zip")
    assert "--checkpoint" in out and "inputs/resume/model_2.pt" in out
    names = json.loads((staging / "result.json").read_text())["checkpoints"]
    # rsl_rl loads iteration 2 and runs 2 more: iterations 2..3, last checkpoint model_3 (not model_1)
    assert max(int(re.search(r"\d+", n).group()) for n in names) == 3, names
    progress = json.loads((staging / "progress.json").read_text())
    assert progress["iteration"] == 4  # rsl_rl prints "Learning iteration 3/4": the count went on from 2


def test_play_is_bounded_and_records_a_video(tmp: Path, trained: dict) -> None:
    """play runs the policy for a fixed number of steps (Isaac Lab's own play loops until SIGINT)."""
    if "rsl_rl" not in trained:
        pytest.skip("needs the rsl_rl training above")
    checkpoint = staged_checkpoint(trained["rsl_rl"], "model_2.pt")
    code, staging, out = run_job(tmp, "play", mode="play", rlLibrary="rsl_rl", numEnvs=2, recordVideo=True,
                                 checkpointUri=f"file://{checkpoint}", envPackageUri=str(package_of(tmp)))
    assert code == 0, out[-4000:]
    assert "--num_steps 300" in out  # bounded: PLAY_STEPS
    videos = list((staging / "run").rglob("*.mp4"))
    assert videos and all(v.stat().st_size > 1000 for v in videos), out[-3000:]
    assert json.loads((staging / "result.json").read_text())["status"] == "succeeded"


def test_tgz_installs_and_registers_the_task(tmp: Path) -> None:
    package = build_package(tmp, "tgz")
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-m", "isaaclab_runner", "list-tasks", "--json", "--package",
                           str(package)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["sources"]["isaaclab-custom-cartpole"] == [TASK]
    assert "Isaac-Cartpole-Direct" in doc["sources"]["isaaclab_tasks"]
    assert doc["aliases"]["Isaac-Cartpole-Direct-v0"] == "Isaac-Cartpole-Direct"
    assert installed(proc.stdout, "tgz")


def test_unregistered_task_fails_with_the_list_and_hints(tmp: Path) -> None:
    code, staging, out = run_job(tmp, "bad-task", mode="train", rlLibrary="rsl_rl", task="Isaac-No-Such-Task",
                                 envPackageUri=str(package_of(tmp)))
    assert code == 2
    error = json.loads((staging / "result.json").read_text())["error"]
    assert "not registered" in error and TASK in error and "gym.register(id=...)" in error


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
