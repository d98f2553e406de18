"""A real MLflow tracking server on loopback for the tests (SQLite store, artifacts proxied from a local folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_env import free_port

MLFLOW = Path(sys.executable).parent / "mlflow"


@contextmanager
def running_mlflow_server(root: Path) -> Iterator[str]:
    """Start ``mlflow server`` with its store under ``root``; yield its URI; stop it."""
    assert MLFLOW.exists(), "mlflow is missing from the Airflow venv: run `make install` (requirements-dev.txt)"
    port = free_port()
    proc = subprocess.Popen(
        [str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", str(root / "artifacts")],
        cwd=root, stdout=(root / "server.log").open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        # no job runner: its six huey consumers serve MLflow's GenAI jobs, which the pipeline never submits
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    try:
        yield uri
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
