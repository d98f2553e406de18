"""Test settings: a private AIRFLOW_HOME and pipeline home per session, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="isaaclab-pipeline-tests-"))

os.environ["AIRFLOW_HOME"] = str(_HOME / "airflow")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["ISAACLAB_PIPELINE_HOME"] = str(_HOME / "pipeline")
# no real AWS account is ever reached from tests
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"


def pytest_collection_finish(session) -> None:  # noqa: ANN001 - pytest's Session
    """Start building the MWAA image venvs in the background when tests/mwaa is in the session: their pip time
    then overlaps the tests before them (tests/mwaa_venvs.py)."""
    if os.environ.get("ISAACLAB_TESTS_NO_PREBUILD") or not any(
            item.nodeid.startswith("tests/mwaa/") for item in session.items):
        return
    import mwaa_venvs

    mwaa_venvs.start_prebuild(sorted(p.name for p in mwaa_venvs.FIXTURES.iterdir() if p.is_dir()))
