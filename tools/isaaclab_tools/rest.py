"""Trigger the DAG and follow a run without VAMS: through a local/self-hosted api-server or MWAA's REST API.

    python -m isaaclab_tools.cli trigger --conf conf.json [--airflow-url URL | --mwaa-env NAME]
    python -m isaaclab_tools.cli status RUN_ID [--airflow-url URL | --mwaa-env NAME]

The HTTP clients are the VAMS bridge's (``vams_bridge.airflow_api``): one client for both, with one retry rule
(MWAA's ``ThrottlingException``, HTTP 429 with ``Retry-After``, 502/503/504 and dropped connections). A trigger
always carries its own run id, so a POST repeated after a lost answer cannot create a second run: Airflow answers
409, and the run is read back. A local api-server is reached with a JWT: ``AIRFLOW_API_TOKEN`` if set, else
``POST /auth/token`` with ``AIRFLOW_USERNAME``/``AIRFLOW_PASSWORD``, else ``GET /auth/token``
(``SIMPLE_AUTH_MANAGER_ALL_ADMINS``, as ``make airflow`` runs it). MWAA is reached with ``InvokeRestApi`` (IAM
``airflow:InvokeRestApi``) under the caller's AWS credentials, through the amazon provider's ``MwaaHook``.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from isaaclab_pipeline.config import DAG_ID
from vams_bridge.airflow_api import ApiResponse, HttpApi, MwaaApi

DEFAULT_AIRFLOW_URL = "http://127.0.0.1:8080"
Api = HttpApi | MwaaApi


def make_api(airflow_url: str | None, mwaa_env: str | None) -> Api:
    """The API the command line names: ``--mwaa-env`` wins, else ``--airflow-url``/``AIRFLOW_URL``/localhost."""
    if mwaa_env:
        from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook

        conn_id = os.environ.get("AIRFLOW_VAR_ISAACLAB_AWS_CONN_ID") or None
        return MwaaApi(MwaaHook(aws_conn_id=conn_id).conn, mwaa_env)
    user, password = os.environ.get("AIRFLOW_USERNAME"), os.environ.get("AIRFLOW_PASSWORD")
    return HttpApi(airflow_url or os.environ.get("AIRFLOW_URL") or DEFAULT_AIRFLOW_URL,
                   jwt=os.environ.get("AIRFLOW_API_TOKEN") or None, timeout_s=30.0,
                   credentials=(user, password) if user and password else None)


def ui_url(api: Api) -> str:
    """The UI's base URL: the api-server's, or the MWAA environment's web server."""
    if isinstance(api, HttpApi):
        return api.base_url
    env = api.client.get_environment(Name=api.env_name)["Environment"]
    return f"https://{env['WebserverUrl']}"


def run_link(api: Api, run_id: str, dag_id: str = DAG_ID) -> str:
    """The UI page of a DAG run."""
    return f"{ui_url(api)}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def new_run_id() -> str:
    """A run id of the CLI's own: ``cli__<UTC time>_<8 hex>``."""
    return f"cli__{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S')}_{uuid.uuid4().hex[:8]}"


def trigger(api: Api, conf: dict[str, Any], run_id: str | None = None, note: str | None = None,
            dag_id: str = DAG_ID) -> ApiResponse:
    """``POST /dags/{dag_id}/dagRuns`` with the conf and a run id; Airflow validates it against the Params (400).

    :return: Airflow's answer: the run (a 409 for our own id means a retried POST went through: the run is read
        back), or the refusal's detail.
    """
    run_id = run_id or new_run_id()
    body: dict[str, Any] = {"logical_date": None, "conf": conf, "dag_run_id": run_id}
    if note:
        body["note"] = note
    answer = api.call("POST", f"/dags/{dag_id}/dagRuns", body)
    if answer.status == 409:
        again = api.call("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
        if again.ok and isinstance(again.data, dict) and again.data.get("conf") == conf:
            return again
    return answer


def status(api: Api, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
    """The run's state and each task's state (``{"state": ..., "tasks": {task_id: state}}``).

    :raises LookupError: if the run does not exist.
    """
    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    run = api.call("GET", path)
    if run.status == 404:
        raise LookupError(f"no run {run_id!r} of {dag_id}")
    if not run.ok:
        raise RuntimeError(f"GET {path} answered HTTP {run.status}: {run.detail()}")
    tis = api.call("GET", f"{path}/taskInstances")
    tasks = {}
    if tis.ok and isinstance(tis.data, dict):
        tasks = {ti["task_id"]: ti.get("state") for ti in tis.data.get("task_instances", [])}
    return {"runId": run_id, "state": run.data.get("state"), "tasks": tasks}


def cmd_trigger(conf: dict[str, Any], airflow_url: str | None, mwaa_env: str | None,
                run_id: str | None = None) -> int:
    """``trigger``: print the run id and its UI link; exit 0, or 2 if Airflow refused the conf."""
    api = make_api(airflow_url, mwaa_env)
    answer = trigger(api, conf, run_id)
    if not answer.ok:
        print(f"Airflow refused the run (HTTP {answer.status}): {answer.detail()}")
        return 2 if answer.status < 500 else 1
    run = answer.data["dag_run_id"]
    print(f"run id: {run}")
    print(f"state: {answer.data.get('state')}")
    print(f"link: {run_link(api, run)}")
    return 0


def cmd_status(run_id: str, airflow_url: str | None, mwaa_env: str | None) -> int:
    """``status``: print the run's and each step's state; exit 0 unless it failed (1) or does not exist (2)."""
    api = make_api(airflow_url, mwaa_env)
    try:
        info = status(api, run_id)
    except LookupError as exc:
        print(exc)
        return 2
    print(f"run {run_id}: {info['state']}")
    for task_id, state in info["tasks"].items():
        print(f"  {task_id}: {state}")
    print(f"link: {run_link(api, run_id)}")
    return 1 if info["state"] == "failed" else 0
