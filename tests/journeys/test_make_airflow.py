"""`make airflow` from a clean home: the Makefile's own command comes up with every component healthy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from pipeline_env import free_port

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")

pytestmark = pytest.mark.e2e


def _health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as resp:
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


def test_make_airflow_comes_up_healthy(tmp_path: Path) -> None:
    """`airflow standalone` starts its components as `airflow ...` from PATH; the Makefile must provide it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    # a PATH without the venv, as on a fresh clone's shell
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venvs" not in p)
    env.update(AIRFLOW_HOME=str(tmp_path / "airflow"), ISAACLAB_PIPELINE_HOME=str(tmp_path / "pipeline"),
               AIRFLOW_PORT=str(port))
    log = (tmp_path / "standalone.log").open("w")
    proc = subprocess.Popen(["make", "--no-print-directory", "airflow"], cwd=REPO, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    health = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            health = _health(port)
            if health and all(health.get(c, {}).get("status") == "healthy" for c in COMPONENTS):
                break
            time.sleep(3)
        text = (tmp_path / "standalone.log").read_text()
        assert proc.poll() is None, f"make airflow exited with {proc.returncode}:\n{text[-3000:]}"
        assert "FileNotFoundError" not in text, text[-3000:]
        assert health is not None, f"no answer on port {port}:\n{text[-3000:]}"
        for component in COMPONENTS:
            assert health[component]["status"] == "healthy", (component, health, text[-3000:])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
