"""Trigger the DAG and follow a run without VAMS: through a local/self-hosted api-server or MWAA's REST API.

    python -m isaaclab_pipeline.cli trigger --conf conf.json [--airflow-url URL | --mwaa-env NAME]
    python -m isaaclab_pipeline.cli status RUN_ID [--airflow-url URL | --mwaa-env NAME]

A local api-server is reached with a JWT: ``AIRFLOW_API_TOKEN`` if set, else ``POST /auth/token`` with
``AIRFLOW_USERNAME``/``AIRFLOW_PASSWORD``, else ``GET /auth/token`` (``SIMPLE_AUTH_MANAGER_ALL_ADMINS``, as
``make airflow`` runs it). MWAA is reached with ``mwaa:InvokeRestApi`` under the caller's AWS credentials.

Throttling is retried with jittered exponential backoff: MWAA's ``ThrottlingException`` and Airflow's HTTP 429
(``Retry-After`` honoured), for every call; HTTP 502/503/504 and dropped connections only for GETs (a POST that
may have gone through is not sent twice: a run without a fixed id would be created twice).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from isaaclab_pipeline.config import DAG_ID

DEFAULT_AIRFLOW_URL = "http://127.0.0.1:8080"
THROTTLING_CODES = ("ThrottlingException", "TooManyRequestsException", "Throttling")
UNAVAILABLE = (502, 503, 504)
ATTEMPTS = 6
BASE_DELAY_S = 0.5
MAX_DELAY_S = 10.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiAnswer:
    """Airflow's HTTP status and decoded JSON answer."""

    status: int
    data: Any

    def detail(self) -> str:
        """Airflow's error detail on one line."""
        data = self.data.get("detail", self.data) if isinstance(self.data, dict) else self.data
        if isinstance(data, list):
            data = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in data)
        return " ".join(str(data).split())


Sent = tuple["ApiAnswer | None", "BaseException | None", "str | None"]  # answer, retryable error, Retry-After


def with_retries(send: Callable[[], Sent], method: str, what: str,
                 sleep: Callable[[float], Any] = time.sleep) -> ApiAnswer:
    """Call ``send`` again while it is throttled (any method) or unavailable (GET only), with backoff.

    :param send: returns (answer, None, Retry-After) or (None, a retryable exception, None).
    :raises Exception: the last retryable exception when every attempt failed with one.
    """
    for attempt in range(ATTEMPTS):
        answer, exc, retry_after = send()
        if answer is not None:
            retry = answer.status == 429 or (method == "GET" and answer.status in UNAVAILABLE)
        else:
            retry = exc is not None and (method == "GET" or _throttled(exc))
        if not retry or attempt == ATTEMPTS - 1:
            if answer is None:
                assert exc is not None
                raise exc
            return answer
        delay = random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2 ** attempt))
        if retry_after and retry_after.strip().isdigit():
            delay = max(delay, min(float(retry_after), MAX_DELAY_S))
        log.warning("%s: %s; retry %d/%d in %.1fs", what, exc or f"HTTP {answer.status}",  # type: ignore[union-attr]
                    attempt + 1, ATTEMPTS - 1, delay)
        sleep(delay)
    raise AssertionError("unreachable")


def _throttled(exc: BaseException) -> bool:
    err = getattr(exc, "response", None) or {}
    return err.get("Error", {}).get("Code", "") in THROTTLING_CODES or \
        err.get("ResponseMetadata", {}).get("HTTPStatusCode") == 429


class AirflowApi:
    """Airflow's REST API of an api-server (``{url}/api/v2``).

    :param url: the server, e.g. ``http://127.0.0.1:8080``.
    :param jwt: a bearer token; None gets one from ``/auth/token`` (see the module docstring).
    """

    sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(self, url: str, jwt: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.jwt = jwt or os.environ.get("AIRFLOW_API_TOKEN") or None
        self.timeout_s = timeout_s

    def _http(self, method: str, url: str, body: Any = None, auth: bool = True) -> ApiAnswer:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        return with_retries(lambda: self._send(req), method, f"{method} {url}", self.sleep)

    def _send(self, req: urllib.request.Request) -> Sent:
        retry_after = None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw, retry_after = exc.code, exc.read(), exc.headers.get("Retry-After")
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            return None, exc, None
        try:
            return ApiAnswer(status, json.loads(raw) if raw else None), None, retry_after
        except json.JSONDecodeError:
            return ApiAnswer(status, raw.decode(errors="replace")), None, retry_after

    def _token(self) -> str:
        if self.jwt is None:
            user, password = os.environ.get("AIRFLOW_USERNAME"), os.environ.get("AIRFLOW_PASSWORD")
            if user and password:
                answer = self._http("POST", f"{self.url}/auth/token", {"username": user, "password": password},
                                    auth=False)
            else:
                answer = self._http("GET", f"{self.url}/auth/token", auth=False)
            if answer.status >= 300 or not isinstance(answer.data, dict) or "access_token" not in answer.data:
                raise RuntimeError(f"{self.url}/auth/token answered HTTP {answer.status}: {answer.detail()}; set "
                                   "AIRFLOW_API_TOKEN, or AIRFLOW_USERNAME and AIRFLOW_PASSWORD")
            self.jwt = answer.data["access_token"]
        return self.jwt

    def call(self, method: str, path: str, body: Any = None) -> ApiAnswer:
        """Call a version-less API path such as ``/dags/{dag_id}/dagRuns``."""
        return self._http(method, f"{self.url}/api/v2{path}", body)

    def ui_url(self) -> str:
        """The UI's base URL."""
        return self.url


class MwaaApi:
    """Airflow's REST API of an MWAA environment through ``mwaa:InvokeRestApi``.

    The provider's ``MwaaHook`` gives the client; its own ``invoke_rest_api`` drops None values from the body,
    and Airflow 3 needs ``"logical_date": null``, so the client's method is called directly.

    :param env_name: the MWAA environment.
    :param aws_conn_id: Airflow connection for AWS credentials; None uses boto3's default chain.
    """

    sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(self, env_name: str, aws_conn_id: str | None = None, client: Any = None) -> None:
        self.env_name = env_name
        if client is None:
            from airflow.providers.amazon.aws.hooks.mwaa import MwaaHook

            client = MwaaHook(aws_conn_id=aws_conn_id).conn
        self.client = client

    def call(self, method: str, path: str, body: Any = None) -> ApiAnswer:
        """Call a version-less API path; Airflow's 4xx/5xx come back as statuses, not exceptions."""
        args: dict[str, Any] = {"Name": self.env_name, "Path": path, "Method": method}
        if body is not None:
            args["Body"] = body
        return with_retries(lambda: self._send(args), method, f"MWAA {method} {path}", self.sleep)

    def _send(self, args: dict[str, Any]) -> Sent:
        try:
            resp = self.client.invoke_rest_api(**args)
        except Exception as exc:
            err = getattr(exc, "response", None) or {}
            if "RestApiStatusCode" in err:
                return ApiAnswer(int(err["RestApiStatusCode"]), err.get("RestApiResponse")), None, None
            status = err.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if _throttled(exc) or status in UNAVAILABLE:
                return None, exc, None
            raise
        return ApiAnswer(int(resp["RestApiStatusCode"]), resp.get("RestApiResponse")), None, None

    def ui_url(self) -> str:
        """The environment's web server URL."""
        env = self.client.get_environment(Name=self.env_name)["Environment"]
        return f"https://{env['WebserverUrl']}"


def run_link(api: AirflowApi | MwaaApi, run_id: str, dag_id: str = DAG_ID) -> str:
    """The UI page of a DAG run."""
    return f"{api.ui_url()}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def trigger(api: AirflowApi | MwaaApi, conf: dict[str, Any], run_id: str | None = None,
            note: str | None = None, dag_id: str = DAG_ID) -> ApiAnswer:
    """``POST /dags/{dag_id}/dagRuns`` with the conf; Airflow validates it against the DAG's Params (HTTP 400).

    :return: Airflow's answer (the run on 200, the refusal's detail otherwise).
    """
    body: dict[str, Any] = {"logical_date": None, "conf": conf}
    if run_id:
        body["dag_run_id"] = run_id
    if note:
        body["note"] = note
    return api.call("POST", f"/dags/{dag_id}/dagRuns", body)


def status(api: AirflowApi | MwaaApi, run_id: str, dag_id: str = DAG_ID) -> dict[str, Any]:
    """The run's state and each task's state (``{"state": ..., "tasks": {task_id: state}}``).

    :raises LookupError: if the run does not exist.
    """
    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    run = api.call("GET", path)
    if run.status == 404:
        raise LookupError(f"no run {run_id!r} of {dag_id}")
    if run.status >= 300:
        raise RuntimeError(f"GET {path} answered HTTP {run.status}: {run.detail()}")
    tis = api.call("GET", f"{path}/taskInstances")
    tasks = {}
    if tis.status < 300 and isinstance(tis.data, dict):
        tasks = {ti["task_id"]: ti.get("state") for ti in tis.data.get("task_instances", [])}
    return {"runId": run_id, "state": run.data.get("state"), "tasks": tasks}


def make_api(airflow_url: str | None, mwaa_env: str | None) -> AirflowApi | MwaaApi:
    """The API the command line names: ``--mwaa-env`` wins, else ``--airflow-url``/``AIRFLOW_URL``/localhost."""
    if mwaa_env:
        return MwaaApi(mwaa_env, os.environ.get("AIRFLOW_VAR_ISAACLAB_AWS_CONN_ID") or None)
    return AirflowApi(airflow_url or os.environ.get("AIRFLOW_URL") or DEFAULT_AIRFLOW_URL)


def cmd_trigger(conf: dict[str, Any], airflow_url: str | None, mwaa_env: str | None,
                run_id: str | None = None) -> int:
    """``trigger``: print the run id and its UI link; exit 0, or 2 if Airflow refused the conf."""
    api = make_api(airflow_url, mwaa_env)
    answer = trigger(api, conf, run_id)
    if answer.status >= 300:
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
