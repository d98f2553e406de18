"""Helpers of the UI tests: a real ``airflow api-server`` with the DAG and the plugins folder (the runs view),
behind Simple auth with a user and password, and a way to seed its DB as the pipeline's steps leave it.

No scheduler runs: a triggered run stays queued. The runs the view must show finished or running are written into
the server's DB as the steps would leave them (their task states, the XComs each step returns), with real files on
disk where the steps would have put them (a published output folder, a staging folder whose progress.json the test
rewrites). The server reads them through its own code paths, as it would on MWAA.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline_env import api_server

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venvs" / "airflow" / "bin" / "airflow"
PYTHON = REPO / ".venvs" / "airflow" / "bin" / "python"
DAG_ID = "isaac-lab-training"
USER, PASSWORD = "robotics", "isaac-lab-ui-test"

# Writes one run's task states and XComs into the server's DB, as the steps leave them. The job steps are mapped
# per trial in the sweep-capable DAG (the scheduler turns their placeholder index -1 into 0..n-1); a DAG without
# mapping keeps -1.
SEED = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from sqlalchemy import select
from airflow.models.dagrun import DagRun
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

spec = json.loads(sys.argv[1])
trial_steps = {"submit_job", "wait_for_job", "convert_tensorboard_logs", "publish_outputs"}
with create_session() as session:
    dag = SerializedDagModel.get_dag(spec["dag_id"], session=session)
    mapped = dag.get_task("submit_job").get_closest_mapped_task_group() is not None
    index = 0 if mapped else -1
    run = session.scalar(select(DagRun).where(DagRun.dag_id == spec["dag_id"], DagRun.run_id == spec["run_id"]))
    now = datetime.now(timezone.utc)
    run.state = spec["state"]
    run.start_date = now - timedelta(seconds=spec["started_s_ago"])
    run.end_date = now if spec["state"] in ("success", "failed") else None
    for ti in run.task_instances:
        if ti.task_id in trial_steps and ti.map_index == -1 and mapped:
            ti.map_index = 0
        ti.state = spec["tis"].get(ti.task_id)
    session.flush()
    for x in spec["xcoms"]:
        XComModel.set(key=x["key"], value=x["value"], dag_id=spec["dag_id"], task_id=x["task"],
                      run_id=spec["run_id"], map_index=index if x["task"] in trial_steps else -1, session=session)
print(json.dumps({"mapped": mapped}))
"""


@dataclass
class Server:
    """The running api-server: its URL, environment and home."""

    url: str
    env: dict[str, str]
    home: Path

    def token(self) -> str:
        """A JWT for the test user (``POST /auth/token``)."""
        req = urllib.request.Request(f"{self.url}/auth/token", method="POST",
                                     data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["access_token"]

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        """One request to the server; returns (status, JSON or text)."""
        headers = {"Content-Type": "application/json"}
        if token is not False:
            headers["Authorization"] = f"Bearer {token or self.token()}"
        req = urllib.request.Request(f"{self.url}{path}", method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def seed_run(self, run_id: str, conf: dict, state: str, tis: dict[str, str | None],
                 xcoms: list[dict[str, Any]], started_s_ago: float = 600) -> dict:
        """Create a run through the REST API, then give it the task states and XComs its steps would leave."""
        status, body = self.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns",
                                 {"dag_run_id": run_id, "logical_date": None, "conf": conf})
        assert status == 200, body
        spec = {"dag_id": DAG_ID, "run_id": run_id, "state": state, "tis": tis, "xcoms": xcoms,
                "started_s_ago": started_s_ago}
        proc = subprocess.run([str(PYTHON), "-c", SEED, json.dumps(spec)], env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return json.loads(proc.stdout.strip().splitlines()[-1])


def start_server(home: Path) -> Iterator[Server]:
    """A migrated private DB with the DAG serialized, and ``airflow api-server`` on a free loopback port."""
    dags = home / "dags"
    dags.mkdir()
    shutil.copy2(REPO / "dags" / "isaac_lab_training.py", dags / "isaac_lab_training.py")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps({USER: PASSWORD}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({
        "AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__API_AUTH__JWT_SECRET": "ui-test-secret", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "PYTHONPATH": str(REPO / "plugins"), "ISAACLAB_PIPELINE_HOME": str(home / "pipeline"),
        "ISAACLAB_KNOWN_TASKS": str(home / "known-tasks.json"),
    })
    (home / "known-tasks.json").write_text(json.dumps({"sources": {"isaaclab_tasks": ["Isaac-Cartpole",
                                                                                       "Isaac-Ant"]},
                                                       "aliases": {"Isaac-Ant-v0": "Isaac-Ant"}}))
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run([str(AIRFLOW), "dags", "reserialize"], env=env, check=True, capture_output=True, timeout=600)
    with api_server(AIRFLOW, env, home) as url:
        yield Server(url, env, home)
