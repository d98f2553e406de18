"""The MWAA bundle's layout, reproducibility and plugin loading.

Installing it on each MWAA image (that image's constraints, the DAG imported, a dag.test run) is
tests/mwaa/test_mwaa_versions.py (``make test-mwaa``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from pipeline_env import mwaa_bundle_builder

REPO = Path(__file__).resolve().parents[2]


builder = mwaa_bundle_builder()


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


def test_bundle_refuses_an_airflow_without_an_mwaa_image(tmp_path: Path) -> None:
    for version in ("3.1.0", "2.10.3", "3.3.2"):
        with pytest.raises(ValueError, match=f"Airflow {version} is not supported"):
            builder.build(tmp_path / "mwaa", version)
    assert not (tmp_path / "mwaa").exists()


def test_requirements_refuse_an_airflow_pin(tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("apache-airflow==3.3.2\njsonschema\n")
    with pytest.raises(ValueError, match="apache-airflow"):
        builder.bundle_requirements(reqs, "3.3.1", "3.12")


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
