"""Faults around the pipeline: Airflow Variables that cannot be read, and MWAA/Airflow REST throttling.

- A Variable read that fails never becomes the default (a deployment on Batch would silently run locally).
- The VAMS bridge and the trigger CLI retry MWAA's ThrottlingException and HTTP 429 with backoff.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from isaaclab_pipeline import settings as settings_module
from isaaclab_pipeline.settings import PipelineSettings, SettingsUnavailableError, get_setting

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "vams_bridge"))  # the Lambda's package

# Airflow Variables


def test_a_variable_read_that_fails_is_not_turned_into_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import Variable

    def broken(key: str, default: Any = None, **_: Any) -> Any:
        raise RuntimeError("secrets backend: ThrottlingException")

    monkeypatch.delenv("AIRFLOW_VAR_ISAACLAB_COMPUTE_BACKEND", raising=False)
    monkeypatch.setattr(Variable, "get", staticmethod(broken))
    with pytest.raises(SettingsUnavailableError, match="isaaclab_compute_backend .*ThrottlingException"):
        PipelineSettings.load()


def test_an_absent_variable_inside_a_task_is_confirmed_with_the_api_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's secrets chain turns an API server error into "not found"; the direct ask tells them apart."""
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import ErrorType
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import ErrorResponse, VariableResult

    monkeypatch.delenv("AIRFLOW_VAR_ISAACLAB_COMPUTE_BACKEND", raising=False)
    monkeypatch.setattr(Variable, "get", staticmethod(lambda key, default=None, **kw: default))

    class Comms:
        def __init__(self, answer: Any) -> None:
            self.answer = answer

        def send(self, msg: Any) -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(ErrorResponse(error=ErrorType.API_SERVER_ERROR,
                                                                           detail={"status": 503})), raising=False)
    with pytest.raises(SettingsUnavailableError, match="API_SERVER_ERROR"):
        get_setting("compute_backend", "local")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(BrokenPipeError("supervisor gone")), raising=False)
    with pytest.raises(SettingsUnavailableError, match="supervisor gone"):
        get_setting("compute_backend", "local")
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(ErrorResponse(error=ErrorType.VARIABLE_NOT_FOUND)),
                        raising=False)
    assert get_setting("compute_backend", "local") == "local"  # really not set: the default
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", Comms(VariableResult(key="isaaclab_compute_backend",
                                                                               value="batch")), raising=False)
    assert get_setting("compute_backend", "local") == "batch"  # the first read had failed quietly


def test_outside_airflow_the_environment_is_all_there_is(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_airflow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("airflow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_airflow)
    assert settings_module.get_setting("device", "auto") == "auto"


@pytest.mark.parametrize("raw", ['["s3://ok-bucket/p", 3]', "s3:///x", "s3://ok-bucket/../x", "https://x", "[1"])
def test_a_bad_allow_list_is_named(raw: str) -> None:
    with pytest.raises(ValueError, match="isaaclab_allowed_uri_prefixes"):
        settings_module.parse_uri_prefixes(raw)


# MWAA and Airflow REST throttling


def _mwaa_client() -> Any:
    return boto3.client("mwaa", region_name="us-east-1")


def test_bridge_retries_mwaa_throttling_then_succeeds() -> None:
    from vams_bridge.airflow_api import MwaaApi

    client = _mwaa_client()
    api = MwaaApi(client, "env")
    api.sleep = lambda s: None  # type: ignore[method-assign]
    with Stubber(client) as stub:
        stub.add_client_error("invoke_rest_api", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_client_error("invoke_rest_api", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_response("invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": {"dag_run_id": "r"}})
        answer = api.call("POST", "/dags/isaac-lab-training/dagRuns", {"dag_run_id": "r"})
        stub.assert_no_pending_responses()
    assert answer.status == 200 and answer.data == {"dag_run_id": "r"}


def test_bridge_retries_airflow_429_inside_mwaa_and_gives_up_with_the_answer() -> None:
    from vams_bridge import airflow_api

    client = _mwaa_client()
    api = airflow_api.MwaaApi(client, "env")
    api.sleep = lambda s: None  # type: ignore[method-assign]
    with Stubber(client) as stub:
        for _ in range(airflow_api.ATTEMPTS):
            stub.add_client_error("invoke_rest_api", service_error_code="RestApiClientException",
                                  http_status_code=400, response_meta={},
                                  modeled_fields={"RestApiStatusCode": 429, "RestApiResponse": {"detail": "slow"}})
        answer = api.call("GET", "/dags/isaac-lab-training")
        stub.assert_no_pending_responses()
    assert answer.status == 429 and answer.detail() == "slow"


def test_bridge_does_not_retry_a_refusal() -> None:
    from vams_bridge.airflow_api import MwaaApi

    client = _mwaa_client()
    api = MwaaApi(client, "env")
    with Stubber(client) as stub:
        stub.add_client_error("invoke_rest_api", service_error_code="RestApiClientException", http_status_code=400,
                              modeled_fields={"RestApiStatusCode": 400, "RestApiResponse": {"detail": "bad conf"}})
        answer = api.call("POST", "/dags/isaac-lab-training/dagRuns", {})
        stub.assert_no_pending_responses()
    assert answer.status == 400


class _Flaky(BaseHTTPRequestHandler):
    """Answers 429 (with Retry-After: 0) to the first ``throttle`` requests, then 200; 503 forever on /down."""

    throttle = 2
    seen: list[str] = []
    bodies: list[dict[str, Any]] = []

    def _answer(self) -> None:
        type(self).seen.append(f"{self.command} {self.path}")
        length = int(self.headers.get("Content-Length") or 0)
        if length and "dagRuns" in self.path:
            type(self).bodies.append(json.loads(self.rfile.read(length)))
        if self.path.startswith("/auth/token"):
            body, status = {"access_token": "jwt"}, 200
        elif self.path.endswith("/down"):
            body, status = {"detail": "unavailable"}, 503
        elif sum(1 for s in type(self).seen if not s.split(" ", 1)[1].startswith("/auth")) <= type(self).throttle:
            body, status = {"detail": "Too Many Requests"}, 429
        else:
            body, status = {"dag_run_id": "r", "state": "queued"}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _Flaky.seen, _Flaky.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_bridge_http_api_retries_429(flaky_server: str) -> None:
    from vams_bridge.airflow_api import HttpApi

    api = HttpApi(flaky_server)
    answer = api.call("POST", "/dags/isaac-lab-training/dagRuns", {"dag_run_id": "r"})
    assert answer.status == 200
    assert [s for s in _Flaky.seen if "dagRuns" in s] == ["POST /api/v2/dags/isaac-lab-training/dagRuns"] * 3


def test_cli_retries_429_and_a_repeated_post_cannot_create_a_second_run(flaky_server: str) -> None:
    """The CLI shares the bridge's client; its trigger carries its own run id, so a repeat after a lost answer is
    safe (Airflow would answer 409 for the same id)."""
    from isaaclab_tools.rest import HttpApi, trigger

    api = HttpApi(flaky_server)
    api.sleep = lambda s: None  # type: ignore[method-assign]
    assert trigger(api, {"trainingConfig": {}}).status == 200
    posts = [s for s in _Flaky.seen if s.startswith("POST /api/v2/dags")]
    assert len(posts) == 3 and _Flaky.bodies[-1]["dag_run_id"].startswith("cli__")
    assert len({b["dag_run_id"] for b in _Flaky.bodies}) == 1  # every repeat names the same run
    assert api.call("GET", "/down").status == 503  # retried, then Airflow's answer comes back


def test_cli_status_through_mwaa_rides_out_throttling(monkeypatch: pytest.MonkeyPatch) -> None:
    """``status --mwaa-env`` builds its client through the provider's MwaaHook, and both of its reads (the run,
    then its task instances) are retried past MWAA's throttling."""
    from isaaclab_tools.rest import make_api, status

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    api = make_api(None, "env")
    api.sleep = lambda s: None  # type: ignore[method-assign]
    run_path = "/dags/isaac-lab-training/dagRuns/manual__1"
    with Stubber(api.client) as stub:
        stub.add_client_error("invoke_rest_api", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_response("invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": {"state": "running"}},
                          {"Name": "env", "Path": run_path, "Method": "GET"})
        stub.add_client_error("invoke_rest_api", service_error_code="ThrottlingException", http_status_code=429)
        stub.add_response("invoke_rest_api", {"RestApiStatusCode": 200, "RestApiResponse": {"task_instances": [
            {"task_id": "submit_job", "state": "success"}, {"task_id": "wait_for_job", "state": "deferred"}]}},
            {"Name": "env", "Path": f"{run_path}/taskInstances", "Method": "GET"})
        answer = status(api, "manual__1")
        stub.assert_no_pending_responses()
    assert answer == {"runId": "manual__1", "state": "running",
                      "tasks": {"submit_job": "success", "wait_for_job": "deferred"}}
