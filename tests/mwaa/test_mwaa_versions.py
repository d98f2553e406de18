"""The MWAA bundle on each of MWAA's Airflow 3.x images, installed the way the image installs it.

Per version (``tests/fixtures/mwaa/<version>/``, copied from aws/amazon-mwaa-docker-images; SOURCE.md there):

1. a fresh venv gets what the image's bootstrap installs (``apache-airflow[celery,statsd]==<version>``, the
   amazon provider with ``aiobotocore``, the standard provider) under the image's ``airflow_constraints.txt``;
2. then the bundle's ``requirements.txt`` from ``make mwaa-bundle AIRFLOW_VERSION=<version>``, as MWAA's
   ``safe-pip-install`` runs it: ``pip install -c mwaa_essential_constraints.txt -r requirements.txt``, its
   ``--constraint`` URL replaced by the image's copy of that same file (GitHub's raw URLs can't be reached here);
3. the bundle is unpacked as MWAA does (``dags/``, ``plugins.zip``), the DAG and the plugins are imported, and
   ``dag.test()`` runs a tiny real training on the local backend (2 iterations of the example cartpole, the runner
   in ``.venvs/isaaclab``) through every step to the published manifest.

The venvs (~2 min of pip each, tests/mwaa_venvs.py) are built in the background from the session's start and
cached under ``.local/mwaa-venv/<version>-<key>``; ``make test`` runs this module with the rest, ``make test-mwaa``
alone.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from mwaa_venvs import venv_for
from pipeline_env import ISAACLAB_PYTHON, mwaa_bundle_builder

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "mwaa"
STEPS = {"validate_config", "resolve_inputs", "submit_job", "wait_for_job", "convert_tensorboard_logs",
         "publish_outputs", "compare_trials", "decide_round_2", "decide_round_3"} | {
    f"trial_round_{r}.{step}" for r in (2, 3)
    for step in ("submit_job", "wait_for_job", "convert_tensorboard_logs", "publish_outputs")}
# What each image pins for us (the constraints files' own lines; checked below against the files).
PROVIDER_PINS = {"3.0.6": "9.12.0", "3.2.1": "9.25.0", "3.3.1": "9.34.0"}


builder = mwaa_bundle_builder()
VERSIONS = list(builder.MWAA_AIRFLOW_VERSIONS)


# Runs inside the MWAA venv, in the unpacked bundle: parse as the dag processor does, load the plugins as every
# component does, then dag.test() a tiny local training.
PROBE = r"""
import json, sys, time
from importlib.metadata import version
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 3.0
    from airflow.models.dagbag import DagBag
from airflow import plugins_manager
home = sys.argv[1]
bag = DagBag()  # AIRFLOW__CORE__LOAD_EXAMPLES=False: the dags folder only
if hasattr(plugins_manager, "_get_plugins"):
    plugins, plugin_errors = plugins_manager._get_plugins()
else:  # Airflow 3.0
    plugins_manager.ensure_plugins_loaded()
    plugins, plugin_errors = plugins_manager.plugins, plugins_manager.import_errors
import isaaclab_pipeline
report = {"import_errors": {str(k): str(v)[-2000:] for k, v in bag.import_errors.items()},
          "plugin_errors": {str(k): str(v)[-2000:] for k, v in plugin_errors.items()},
          "plugins": sorted(p.name for p in plugins), "dag_ids": sorted(bag.dags),
          "views": sorted(v["name"] for p in plugins for v in [*getattr(p, "fastapi_apps", []),
                                                                *getattr(p, "external_views", [])]),
          "airflow": version("apache-airflow"), "provider": version("apache-airflow-providers-amazon"),
          "package": isaaclab_pipeline.__file__,
          "heavy": sorted(m for m in ("torch", "isaaclab", "tensorboard", "matplotlib") if m in sys.modules)}
dag = bag.dags.get("isaac-lab-training")
if dag is not None:
    report["tasks"] = sorted(t.task_id for t in dag.tasks)
    conf = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 16, "maxIterations": 2, "seed": 3},
            "inputS3AssetFilePath": f"file://{home}/assets/custom_cartpole/", "outputS3Path": f"file://{home}/outputs"}
    started = time.monotonic()
    run = dag.test(run_conf=conf)
    report["dag_test_s"] = round(time.monotonic() - started, 1)
    report["state"] = str(run.state)
    report["states"] = {f"{ti.task_id}[{ti.map_index}]": str(ti.state) for ti in run.get_task_instances()}
    report["run_id"] = run.run_id
print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def example_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example env package in a local asset folder, as the user guide packages it."""
    from isaaclab_tools.cli import EXAMPLE_ENV, package_env

    assets = tmp_path_factory.mktemp("assets")
    package_env(EXAMPLE_ENV, assets / "custom_cartpole" / "custom_cartpole.tar.gz")
    return assets


def test_versions_are_mwaas_images_and_the_dags_check() -> None:
    from isaaclab_pipeline import compat

    assert sorted(p.name for p in FIXTURES.iterdir() if p.is_dir()) == VERSIONS
    assert tuple(VERSIONS) == compat.SUPPORTED_AIRFLOW
    for version, provider in PROVIDER_PINS.items():
        text = (FIXTURES / version / "airflow_constraints.txt").read_text()
        # the file is the one the bundle's --constraint line names (its header says where it was copied from)
        assert builder.constraints_url(version, "3.12") in text.split("\n\n")[0] + text[:400]
        assert f"\napache-airflow-providers-amazon=={provider}\n" in text
        assert f"\napache-airflow=={version}\n" in (FIXTURES / version / "mwaa_essential_constraints.txt").read_text()


@pytest.mark.parametrize("version", [*VERSIONS, "3.1.0"])
def test_make_mwaa_bundle_writes_the_versions_constraint(version: str, tmp_path: Path) -> None:
    out = tmp_path / "mwaa"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "build_mwaa_bundle.py"), "--out", str(out),
                           "--airflow-version", version], capture_output=True, text=True, timeout=120)
    if version not in VERSIONS:  # no MWAA image: refused, naming it, and nothing written
        assert proc.returncode == 2 and "'3.1.0'" in proc.stderr and not out.exists()
        return
    assert proc.returncode == 0, proc.stderr
    first = (out / "requirements.txt").read_text().splitlines()[0]
    assert first == f'--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-{version}/constraints-3.12.txt"'
    # the Makefile passes AIRFLOW_VERSION through
    dry = subprocess.run(["make", "-n", "mwaa-bundle", f"AIRFLOW_VERSION={version}"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert f"--airflow-version {version}" in dry.stdout, dry.stdout + dry.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_bundle_installs_imports_and_runs_on_mwaa_image(version: str, tmp_path: Path, example_package: Path) -> None:
    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    bundle = builder.build(tmp_path / "dist" / "mwaa", version)
    requirements = (bundle / "requirements.txt").read_text()
    assert requirements.splitlines()[0] == f'--constraint "{builder.constraints_url(version, "3.12")}"'
    python = venv_for(version, requirements)

    airflow_dir = tmp_path / "usr-local-airflow"  # as MWAA unpacks it; nothing of the checkout around
    shutil.copytree(bundle / "dags", airflow_dir / "dags")
    with zipfile.ZipFile(bundle / "plugins.zip") as zf:
        zf.extractall(airflow_dir / "plugins")
    home = tmp_path / "pipeline"
    shutil.copytree(example_package, home / "assets")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "ISAACLAB_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({"AIRFLOW_HOME": str(airflow_dir / "home"), "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_dir / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(airflow_dir / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "ISAACLAB_PIPELINE_HOME": str(home),
                "AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S": "1",
                "AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON": str(ISAACLAB_PYTHON),
                # rsl_rl logs Train/mean_reward once an episode ended: 128 steps per iteration ends one at once
                "AIRFLOW_VAR_ISAACLAB_OVERRIDES": '["agent.num_steps_per_env=128"]'})
    airflow = python.parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, cwd=airflow_dir, check=True, capture_output=True)
    proc = subprocess.run([str(python), "-c", PROBE, str(home)], cwd=airflow_dir, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("REPORT ")][-1]
    report = json.loads(line.removeprefix("REPORT "))

    assert (report["airflow"], report["provider"]) == (version, PROVIDER_PINS[version])
    assert report["import_errors"] == {} and report["plugin_errors"] == {}, report
    assert report["dag_ids"] == ["isaac-lab-training"] and set(report["tasks"]) == STEPS
    assert "isaac_lab_training_ui" in report["plugins"]
    # the runs view needs 3.1's external views and auth signature: on 3.0 the plugin declares none of it
    expected_views = [] if version.startswith("3.0.") else ["Isaac Lab run", "Isaac Lab runs", "Isaac Lab runs"]
    assert report["views"] == expected_views
    assert report["package"].startswith(str(airflow_dir / "plugins" / "isaaclab_pipeline"))
    assert report["heavy"] == []  # parse stays light on the MWAA scheduler
    assert report["state"] == "success", report["states"]
    assert report["states"]["compare_trials[-1]"] == "skipped"  # one run: nothing to compare
    from isaaclab_pipeline.config import job_uuid

    out = home / "outputs" / job_uuid("isaac-lab-training", report["run_id"])
    manifest = json.loads((out / "manifest.json").read_text())
    paths = {e["path"] for e in manifest["files"]}
    assert {"checkpoints/model_1.pt", "metrics.csv", "summary.json"} <= paths, paths
    print(f"MWAA {version}: dag.test {report['dag_test_s']} s")
