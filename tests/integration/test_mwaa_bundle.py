"""The MWAA bundle, unpacked the way MWAA unpacks it, into a fresh venv holding MWAA's pins.

MWAA 3.3.1 runs Airflow 3.3.1 on Python 3.12 with apache-airflow-providers-amazon 9.34.0. The registries
reachable here carry Airflow 3.3.2 (not 3.3.1), so the venv holds ``apache-airflow==3.3.2`` with the
provider at MWAA's 9.34.0; the constraints URL in the bundle can't be fetched here, so the venv is built from
the bundle's requirements with those pins as the constraint instead. The venv takes ~1.5 min of pip, so it is
cached under ``.local/mwaa-venv/<key>`` (key = pins + bundle requirements); a fresh clone builds it once.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = {"validate_config", "resolve_inputs", "submit_job", "wait_for_job", "convert_tensorboard_logs",
         "publish_outputs"}
# MWAA 3.3.1's pins, as close as the registries allow (Airflow 3.3.1 is not there; 3.3.2 is).
MWAA_PINS = {"apache-airflow": "3.3.2", "apache-airflow-providers-amazon": "9.34.0"}
VENV_ROOT = REPO / ".local" / "mwaa-venv"


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_mwaa_bundle", REPO / "scripts" / "build_mwaa_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = _load_builder()


def _requirements_without_constraint(bundle_requirements: str) -> list[str]:
    return [line for line in bundle_requirements.splitlines() if line and not line.startswith("--constraint")]


def mwaa_venv(bundle_requirements: str) -> Path:
    """Return a venv holding MWAA's pins and the bundle's requirements, building it once per key."""
    reqs = _requirements_without_constraint(bundle_requirements)
    key_src = json.dumps({"pins": MWAA_PINS, "reqs": reqs, "py": sys.version_info[:2]}, sort_keys=True)
    venv = VENV_ROOT / hashlib.sha256(key_src.encode()).hexdigest()[:12]
    python = venv / "bin" / "python"
    done = venv / ".complete"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    # a lock, so two pytest processes (or engineers) don't build the same venv at once
    with open(VENV_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # half-built by an interrupted run
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        constraints = venv / "mwaa-constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in MWAA_PINS.items()))
        (venv / "bundle-requirements.txt").write_text("\n".join(reqs) + "\n")
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             *(f"{name}=={version}" for name, version in MWAA_PINS.items()),
             "-r", str(venv / "bundle-requirements.txt"), "-c", str(constraints)],
            capture_output=True, text=True, timeout=900,
        )
        if proc.returncode:
            raise RuntimeError(f"pip install into {venv} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
        done.write_text(key_src)
    return python


# Runs inside the fresh venv: parse the bundle's dags/ the way the dag processor does and report.
PROBE = r"""
import json, sys
from importlib.metadata import version
from airflow.dag_processing.dagbag import DagBag
bag = DagBag()  # dags_folder from AIRFLOW__CORE__DAGS_FOLDER, as on MWAA
import isaaclab_pipeline, isaaclab_pipeline.config as config
dag = bag.dags.get("isaac-lab-training")
print(json.dumps({
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dags),
    "tasks": sorted(t.task_id for t in dag.tasks) if dag else [],
    "airflow": version("apache-airflow"),
    "provider": version("apache-airflow-providers-amazon"),
    "package": isaaclab_pipeline.__file__,
    "schemas_dir": str(config.schemas_dir()),
    "heavy": sorted(m for m in ("torch", "isaaclab", "tensorboard", "matplotlib") if m in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return builder.build(tmp_path_factory.mktemp("dist") / "mwaa")


def test_bundle_layout(bundle: Path) -> None:
    assert sorted(p.name for p in bundle.iterdir()) == ["dags", "plugins.zip", "requirements.txt"]
    assert (bundle / "dags" / "isaac_lab_training.py").read_bytes() == (
        REPO / "dags" / "isaac_lab_training.py").read_bytes()
    with zipfile.ZipFile(bundle / "plugins.zip") as zf:
        names = set(zf.namelist())
    assert "isaaclab_pipeline/__init__.py" in names
    assert ".airflowignore" in names  # the plugin loader must not import the package's files as top-level modules
    # the AirflowPlugin declarations at the plugins folder's root travel beside the package
    assert {p.name for p in (REPO / "plugins").glob("*.py")} <= names
    assert "isaaclab_pipeline/schemas/training-config.schema.json" in names
    assert "isaaclab_pipeline/schemas/job-spec.schema.json" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # every module of the package travels
    expected = {p.relative_to(REPO / "plugins").as_posix()
                for p in (REPO / "plugins" / "isaaclab_pipeline").rglob("*.py") if "__pycache__" not in p.parts}
    assert expected <= names
    # runtime modules only: the developer tools (make run, trigger/status, the doc generator) stay out of workers
    tools = {p.name for p in (REPO / "tools" / "isaaclab_tools").glob("*.py")} - {"__init__.py"}
    assert not [n for n in names if n.rsplit("/", 1)[-1] in tools | {"trigger_cli.py"} or n.startswith("tools/")]
    lines = (bundle / "requirements.txt").read_text().splitlines()
    assert lines[0] == ('--constraint "https://raw.githubusercontent.com/apache/airflow/'
                        'constraints-3.3.1/constraints-3.12.txt"')
    assert not [line for line in lines if line.lower().startswith("apache-airflow==")]
    assert not [line for line in lines if line.split("=")[0].split(">")[0] in ("torch", "isaaclab")]


def test_bundle_targets_the_stacks_airflow_version() -> None:
    # the --constraint line and the MWAA environment the CloudFormation stack creates must name one version
    template = (REPO / "infra" / "isaaclab-training.yaml").read_text()
    default = re.search(r"MwaaAirflowVersion:\n(?:\s+\w+:.*\n)*?\s+Default: \"([\d.]+)\"", template).group(1)
    assert default == builder.MWAA_AIRFLOW_VERSION


def test_plugins_zip_is_reproducible(tmp_path: Path) -> None:
    first = builder.build(tmp_path / "a")
    second = builder.build(tmp_path / "b")
    assert (first / "plugins.zip").read_bytes() == (second / "plugins.zip").read_bytes()


def test_requirements_refuse_an_airflow_pin(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("apache-airflow==3.3.2\njsonschema\n")
    with pytest.raises(ValueError, match="apache-airflow"):
        builder.bundle_requirements(reqs, "3.3.1", "3.12")


def test_dag_imports_in_fresh_mwaa_venv(bundle: Path, tmp_path: Path) -> None:
    python = mwaa_venv((bundle / "requirements.txt").read_text())
    # unpack as MWAA does: dags/ and plugins.zip under /usr/local/airflow, nothing else of the repo around
    airflow_dir = tmp_path / "usr-local-airflow"
    shutil.copytree(bundle / "dags", airflow_dir / "dags")
    with zipfile.ZipFile(bundle / "plugins.zip") as zf:
        zf.extractall(airflow_dir / "plugins")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "ISAACLAB_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({
        "AIRFLOW_HOME": str(airflow_dir),
        "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_dir / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(airflow_dir / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    proc = subprocess.run([str(python), "-c", PROBE], cwd=airflow_dir, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["import_errors"] == {}
    assert report["dag_ids"] == ["isaac-lab-training"]
    assert set(report["tasks"]) == STEPS | {"compare_trials"}  # a sweep's report
    assert (report["airflow"], report["provider"]) == (MWAA_PINS["apache-airflow"],
                                                       MWAA_PINS["apache-airflow-providers-amazon"])
    # the code and schemas came from the unpacked plugins.zip, not from this checkout
    assert report["package"].startswith(str(airflow_dir / "plugins" / "isaaclab_pipeline"))
    assert report["schemas_dir"] == str(airflow_dir / "plugins" / "isaaclab_pipeline" / "schemas")
    assert report["heavy"] == []  # parse stays light on the MWAA scheduler


# Runs Airflow's plugin loader on an unpacked plugins.zip, as every MWAA component does at start, and reports
# which of the package's files it imported as top-level modules (``config``, ``settings``...).
PLUGIN_PROBE = r"""
import json, sys
from airflow import plugins_manager, settings
stems = set(json.loads(sys.argv[1]))
plugins, errors = plugins_manager._get_plugins()
top = sorted(n for n in stems if n in sys.modules
             and str(getattr(sys.modules[n], "__file__", "") or "").startswith(settings.PLUGINS_FOLDER))
print(json.dumps({"top_level": top, "import_errors": sorted(errors), "plugins": [p.name for p in plugins]}))
"""


@pytest.mark.parametrize("syntax", ["glob", "regexp", None], ids=["glob", "regexp", "no-airflowignore"])
def test_plugin_loader_does_not_import_the_package_as_top_level_modules(bundle: Path, tmp_path: Path,
                                                                        syntax: str | None) -> None:
    plugins = tmp_path / "plugins"
    with zipfile.ZipFile(bundle / "plugins.zip") as zf:
        zf.extractall(plugins)
    if syntax is None:  # the control: what MWAA did before the bundle carried .airflowignore
        (plugins / ".airflowignore").unlink()
    stems = sorted({p.stem for p in (plugins / "isaaclab_pipeline").rglob("*.py")})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
                "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": syntax or "glob"})
    proc = subprocess.run([sys.executable, "-c", PLUGIN_PROBE, json.dumps(stems)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if syntax is None:
        assert {"config", "settings", "storage"} <= set(report["top_level"]), report
    else:  # nothing of the package is imported top-level; the root's plugin declarations load without errors
        assert (report["top_level"], report["import_errors"]) == ([], []), report
