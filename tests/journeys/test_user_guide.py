"""The user guide's journeys, as its readers follow them, through the real DAG with real (tiny) training.

The guide (VAMS "NVIDIA Isaac Lab VAMS Pipeline – User Guide") packages a custom env with a ``setup.py`` and a
``gym.register`` call in ``__init__.py`` (no entry point), archives it with ``tar -czf ... .`` or
``python -m build --sdist``, and sends confs without ``outputS3Path``. ``examples/envs/my_custom_env`` is that
package; ``examples/confs/user-guide/`` holds the guide's confs verbatim.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packages_env import guide_setup_py
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
GUIDE_ENV = REPO / "examples" / "envs" / "my_custom_env"
GUIDE_CONFS = sorted((REPO / "examples" / "confs" / "user-guide").glob("*.json"))
TASK = "MyCustom-Robot-v0"


def guide_tar(project: Path, dest_dir: Path) -> Path:
    """Option B of the guide, run inside the project folder: ``tar -czf my_custom_env.tar.gz --exclude... .``."""
    work = dest_dir / "src"
    shutil.copytree(project, work, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    subprocess.run(["tar", "-czf", "my_custom_env.tar.gz", "--exclude=*.pyc", "--exclude=__pycache__",
                    "--exclude=.git", "."], cwd=work, check=False)  # tar warns that the archive is in the tree
    archive = dest_dir / "my_custom_env.tar.gz"
    shutil.move(work / "my_custom_env.tar.gz", archive)
    shutil.rmtree(work)
    return archive


def guide_sdist(project: Path, dest_dir: Path) -> Path:
    """Option A of the guide: ``python -m build --sdist`` → ``dist/my_custom_env-0.1.0.tar.gz``."""
    work = dest_dir / "src"
    shutil.copytree(project, work, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", "dist"], cwd=work,
                   check=True, capture_output=True)
    (archive,) = (work / "dist").glob("*.tar.gz")
    moved = dest_dir / archive.name
    shutil.move(archive, moved)
    shutil.rmtree(work)
    return moved


# --- every conf of the guide, verbatim, through validate_config -------------------------------------------------


@pytest.mark.parametrize("path", GUIDE_CONFS, ids=[p.stem for p in GUIDE_CONFS])
def test_every_guide_conf_is_accepted_as_written(path: Path, tmp_path: Path) -> None:
    from isaaclab_pipeline.config import apply_deployment, validate_conf

    raw = json.loads(path.read_text())
    conf = validate_conf(raw)
    tc = conf["trainingConfig"]
    inner = raw.get("parameters", raw)["trainingConfig"]
    assert tc["task"] == inner["task"]
    assert isinstance(tc["seed"], int) and tc["seed"] == inner.get("seed", tc["seed"])
    assert "outputS3Path" not in conf  # the guide never sets it ...
    out = apply_deployment(conf, default_output_uri="s3://deployment-outputs/isaac-lab/", max_nodes=16)
    assert out["outputS3Path"] == "s3://deployment-outputs/isaac-lab/"  # ... the deployment's default is used


def test_guide_defaults_task_and_seed() -> None:
    """`task` defaults to Isaac-Cartpole-v0; `seed: null` (the guide's default) draws a seed per run."""
    from isaaclab_pipeline.config import validate_conf

    a = validate_conf({"trainingConfig": {"seed": None}})
    b = validate_conf({"trainingConfig": {}})
    assert a["trainingConfig"]["task"] == "Isaac-Cartpole-v0"
    assert {type(a["trainingConfig"]["seed"]), type(b["trainingConfig"]["seed"])} == {int}
    seeds = {validate_conf({"trainingConfig": {}})["trainingConfig"]["seed"] for _ in range(5)}
    assert len(seeds) > 1


def test_multi_node_conf_is_refused_on_the_local_backend_with_the_reason() -> None:
    from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, validate_conf

    conf = validate_conf(json.loads((REPO / "examples/confs/user-guide/multi-gpu.json").read_text()))
    with pytest.raises(ConfigValidationError, match=r"computeConfig\.numNodes: 2 nodes.*local backend runs one node"):
        apply_deployment(conf, default_output_uri="/tmp/out", max_nodes=1)


def test_without_a_default_output_the_conf_must_say() -> None:
    from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, validate_conf

    with pytest.raises(ConfigValidationError, match="outputS3Path: not set.*isaaclab_default_output_uri"):
        apply_deployment(validate_conf({"trainingConfig": {}}), default_output_uri="", max_nodes=16)


# --- the journeys through the real DAG -------------------------------------------------------------------------

needs_isaaclab = pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A pipeline home with no deployment overrides and no default output set (the local default applies)."""
    from pipeline_env import dag_home

    with dag_home(tmp_path_factory.mktemp("guide-home"), {"overrides": "[]"}, example_env=False) as home:
        yield home


def _run(conf: dict) -> tuple[object, dict[str, str], Path]:
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_pipeline.storage import local_path
    from isaaclab_tools.cli import load_dag, output_location

    run = load_dag().test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    out = local_path(output_location(conf)) / job_uuid("isaac-lab-training", run.run_id)
    return run, states, out


@pytest.mark.e2e
@needs_isaaclab
def test_make_run_trains_the_guide_package_tar_and_prints_the_outputs(tmp_path: Path) -> None:
    """`make run CONF=...` on a guide-shaped conf (no outputS3Path, seed unset) and the guide's tar archive."""
    home = tmp_path / "home"
    (home / "assets" / "my-custom-env").mkdir(parents=True)
    guide_tar(GUIDE_ENV, home / "assets" / "my-custom-env")
    env = {**os.environ, "ISAACLAB_PIPELINE_HOME": str(home), "AIRFLOW_HOME": str(tmp_path / "airflow"),
           "AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S": "1"}
    env.pop("AIRFLOW_VAR_ISAACLAB_DEFAULT_OUTPUT_URI", None)
    proc = subprocess.run(["make", "--no-print-directory", "run", "CONF=examples/confs/my_custom_env_train.json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert lines[-1].startswith("outputs: "), lines[-5:]
    out = Path(lines[-1].removeprefix("outputs: "))
    assert out.parent == (home / "outputs").resolve()  # the local default output location
    files = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {"checkpoints/model_2.pt", "metrics.csv", "training-config.json", "manifest.json"} <= files, files
    config = json.loads((out / "training-config.json").read_text())
    result = json.loads((out / "job-result.json").read_text())
    assert config["outputS3Path"] == str((home / "outputs").resolve())
    assert isinstance(config["trainingConfig"]["seed"], int)
    assert result["seed"] == config["trainingConfig"]["seed"]  # the drawn seed, recorded on both sides
    assert result["envPackage"] == {"name": "my_custom_env", "version": "0.1.0", "modules": ["my_custom_env", "agents"]}
    log = (out / "runner-log.txt").read_text()
    assert f"--task {TASK}" in log and f"--seed {config['trainingConfig']['seed']}" in log


@pytest.mark.e2e
@needs_isaaclab
def test_sdist_package_trains_then_evaluates_by_relative_path_and_by_discovery(home: Path) -> None:
    """Option A (sdist) trains; its checkpoint, uploaded to the asset's checkpoints/, is evaluated twice."""
    asset = home / "assets" / "asset-123"
    asset.mkdir(parents=True)
    guide_sdist(GUIDE_ENV, asset)
    uri = f"file://{asset}/"
    run, states, out = _run({"trainingConfig": {"task": TASK, "numEnvs": 16, "maxIterations": 2, "seed": 7},
                             "inputS3AssetFilePath": uri})
    assert str(run.state) == "success", states
    assert (out / "checkpoints" / "model_1.pt").is_file()
    assert out.parent == home.resolve() / "outputs"

    # the guide's "upload the checkpoint to a checkpoints/ folder" of the asset
    (asset / "checkpoints").mkdir()
    shutil.copy(out / "checkpoints" / "model_1.pt", asset / "checkpoints" / "model_1.pt")
    evaluate = {"mode": "evaluate", "task": TASK, "numEnvs": 4, "numEpisodes": 4, "rlLibrary": "rsl_rl"}
    for conf in ({**evaluate, "checkpointPath": "checkpoints/model_1.pt"}, evaluate):  # Option 1, Option 3
        run, states, out = _run({"trainingConfig": conf, "inputS3AssetFilePath": uri})
        assert str(run.state) == "success", (conf, states)
        summary = json.loads((out / "summary.json").read_text())
        assert summary["episodes"] == 4 and summary["return"]["mean"] == summary["return"]["mean"]
        evaluated = json.loads((out / "evaluation-config.json").read_text())
        assert evaluated["checkpoint"].endswith("model_1.pt"), evaluated


def guide_written_package(dest: Path) -> Path:
    """The package as the guide's text writes it: its setup.py (find_packages(), a dependency, no package_data, no
    MANIFEST.in), the asset under the package; the env, config and agents of ``examples/envs/my_custom_env``."""
    project = dest / "my_custom_env"
    shutil.copytree(GUIDE_ENV, project, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist",
                                                                      "MANIFEST.in"))
    (project / "setup.py").write_text(guide_setup_py("my_custom_env"))
    assert (project / "my_custom_env" / "assets" / "cartpole.usda").is_file()
    return project


@pytest.mark.e2e
@needs_isaaclab
def test_the_guide_s_package_trains_into_its_asset_then_is_evaluated_by_discovery(home: Path, tmp_path: Path) -> None:
    """Must show of issue 30: the guide's package (its tar command) trains, its outputs land inside the asset (as
    VAMS ingests them), and an evaluation naming no checkpoint scores that run's last checkpoint."""
    asset = home / "assets" / "asset-guide-30"
    asset.mkdir(parents=True)
    archive = guide_tar(guide_written_package(tmp_path), asset)
    assert "my_custom_env/assets/cartpole.usda" in subprocess.run(["tar", "-tzf", str(archive)], capture_output=True,
                                                                  text=True).stdout
    uri = f"file://{asset}/"
    run, states, out = _run({"trainingConfig": {"task": TASK, "numEnvs": 16, "maxIterations": 2, "seed": 11},
                             "inputS3AssetFilePath": uri, "outputS3Path": uri})
    assert str(run.state) == "success", states
    assert out.parent == asset.resolve()  # published inside the asset folder
    checkpoints = sorted((out / "checkpoints").glob("model_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    assert checkpoints, sorted(p.name for p in out.rglob("*"))
    last = checkpoints[-1]
    trained = json.loads((out / "training-config.json").read_text())
    assert trained["resolved"]["envPackageUri"].endswith("my_custom_env.tar.gz")
    assert trained["resolved"]["seed"] == 11 and trained["resolved"]["rlLibrary"] == "rsl_rl"
    assert trained["resolved"]["isaacLabVersion"].startswith("3.")

    # the guide's Option 3: no checkpoint named; the asset now holds the run's checkpoints and its exported/policy.pt
    episodes = 6
    run, states, evaluated_out = _run({"trainingConfig": {"mode": "evaluate", "task": TASK, "numEnvs": 4,
                                                          "numEpisodes": episodes, "rlLibrary": "rsl_rl"},
                                       "inputS3AssetFilePath": uri, "outputS3Path": uri})
    assert str(run.state) == "success", states
    summary = json.loads((evaluated_out / "summary.json").read_text())
    assert summary["episodes"] == episodes
    rows = (evaluated_out / "episodes.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + episodes
    config = json.loads((evaluated_out / "evaluation-config.json").read_text())
    assert config["checkpoint"] == f"file://{asset}/{out.name}/checkpoints/{last.name}", config["checkpoint"]
    assert config["checkpointChoice"].startswith(f"auto-discovered {config['checkpoint']}: the highest iteration")
    assert config["trainingConfig"]["numEpisodes"] == episodes
