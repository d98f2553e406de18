"""isaaclab_pipeline.compat: the Airflow versions the pipeline runs on, and the refusal of the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from isaaclab_pipeline import compat

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("version", ["3.0.6", "3.2.1", "3.3.1", "3.3.2"])
def test_mwaa_lines_are_accepted(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compat.ALLOW_VARIABLE, raising=False)
    assert compat.check_airflow_version(version) == version


@pytest.mark.parametrize("version", ["3.1.8", "2.10.3", "3.4.0"])
def test_other_versions_are_refused_naming_them(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(compat.ALLOW_VARIABLE, raising=False)
    with pytest.raises(compat.UnsupportedAirflowError, match=rf"does not support Airflow {version}: .*3\.0\.6"):
        compat.check_airflow_version(version)
    monkeypatch.setenv(compat.ALLOW_VARIABLE, version)  # an operator taking the risk on purpose, for that version
    assert compat.check_airflow_version(version) == version
    monkeypatch.setenv(compat.ALLOW_VARIABLE, "3.9.9")
    with pytest.raises(compat.UnsupportedAirflowError):
        compat.check_airflow_version(version)


def test_external_views_from_3_1() -> None:
    assert [compat.has_external_views(v) for v in ("3.0.6", "3.1.0", "3.3.1")] == [False, True, True]


def test_the_dag_file_refuses_an_unsupported_airflow(tmp_path: Path) -> None:
    # the parse-time check as the dag processor meets it: the DAG file's import fails with the version in the error
    probe = ("import importlib.metadata as md, runpy, sys; real = md.version; "
             "md.version = lambda d: '3.1.8' if d == 'apache-airflow' else real(d); "
             f"runpy.run_path({str(REPO / 'dags' / 'isaac_lab_training.py')!r})")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "UnsupportedAirflowError: isaac-lab-training does not support Airflow 3.1.8" in proc.stderr
