"""The two ways to reach Airflow's REST API: MWAA's ``InvokeRestApi`` and a plain api-server over HTTP.

Throttling is retried with jittered exponential backoff: MWAA's ``ThrottlingException`` (InvokeRestApi is rate
limited per environment), Airflow's HTTP 429 (``Retry-After`` honoured), and 502/503/504 or a dropped connection
(the bridge's POST carries a fixed ``dag_run_id``, so a repeat that went through answers 409, which the handler
takes as success). Other answers come back at once.
"""

from __future__ import annotations

import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

RETRY_STATUSES = (429, 502, 503, 504)
THROTTLING_CODES = ("ThrottlingException", "TooManyRequestsException", "Throttling")
ATTEMPTS = 5  # 4 retries: at most ~7.5 s of waiting with the default base, well inside a Lambda's timeout
BASE_DELAY_S = 0.5
MAX_DELAY_S = 4.0


def _delay(attempt: int, retry_after: str | None = None) -> float:
    """Jittered exponential backoff; a server's Retry-After (seconds) wins when it is longer, up to the cap."""
    delay = random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2 ** attempt))
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(float(retry_after), MAX_DELAY_S))
    return delay


def with_retries(send: Callable[[], tuple[ApiResponse | None, BaseException | None, str | None]],
                 what: str, sleep: Callable[[float], Any] = time.sleep) -> ApiResponse:
    """Call ``send`` until it gives an answer that is not throttling/unavailable, at most ``ATTEMPTS`` times.

    :param send: returns (answer, None, retry_after) or (None, a retryable exception, None).
    :raises Exception: the last retryable exception when every attempt failed with one.
    """
    for attempt in range(ATTEMPTS):
        answer, exc, retry_after = send()
        retry = exc is not None or (answer is not None and answer.status in RETRY_STATUSES)
        if not retry or attempt == ATTEMPTS - 1:
            if answer is None:
                assert exc is not None
                raise exc
            return answer
        delay = _delay(attempt, retry_after)
        log.warning("%s: %s; retry %d/%d in %.1fs", what, exc or f"HTTP {answer.status}",  # type: ignore[union-attr]
                    attempt + 1, ATTEMPTS - 1, delay)
        sleep(delay)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class ApiResponse:
    """Airflow's HTTP status and decoded JSON answer."""

    status: int
    data: Any

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def detail(self) -> str:
        """Airflow's error detail as one line (FastAPI puts it in ``detail``, a string or a list of errors)."""
        data = self.data
        if isinstance(data, dict) and "detail" in data:
            data = data["detail"]
        if isinstance(data, list):
            data = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in data)
        return " ".join(str(data).split())


class MwaaApi:
    """Airflow's REST API of an MWAA environment through ``mwaa:InvokeRestApi`` (IAM ``airflow:InvokeRestApi``).

    :param client: a boto3 ``mwaa`` client.
    :param env_name: the MWAA environment's name.
    """

    sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(self, client: Any, env_name: str) -> None:
        self.client = client
        self.env_name = env_name

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> ApiResponse:
        """Call a version-less path such as ``/dags/{dag_id}/dagRuns``; Airflow's 4xx/5xx come back as statuses.

        ``ThrottlingException`` and HTTP 429/502/503/504 are retried with backoff (module docstring).
        """
        args: dict[str, Any] = {"Name": self.env_name, "Path": path, "Method": method}
        if body is not None:
            args["Body"] = body
        return with_retries(lambda: self._send(args), f"MWAA {method} {path}", self.sleep)

    def _send(self, args: dict[str, Any]) -> tuple[ApiResponse | None, BaseException | None, str | None]:
        try:
            resp = self.client.invoke_rest_api(**args)
        except Exception as exc:
            err = getattr(exc, "response", None) or {}
            # RestApiClientException (4xx) / RestApiServerException (5xx) carry Airflow's own answer
            if "RestApiStatusCode" in err:
                return ApiResponse(int(err["RestApiStatusCode"]), err.get("RestApiResponse")), None, None
            code = err.get("Error", {}).get("Code", "")
            status = err.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in THROTTLING_CODES or status in RETRY_STATUSES:
                return None, exc, None
            raise
        return ApiResponse(int(resp["RestApiStatusCode"]), resp.get("RestApiResponse")), None, None


class HttpApi:
    """Airflow's REST API of a self-hosted api-server (``{base_url}/api/v2``), with a JWT bearer token.

    :param base_url: e.g. ``http://127.0.0.1:8080``.
    :param jwt: a token from ``/auth/token``; None fetches one: ``POST /auth/token`` with ``credentials``, else
        ``GET /auth/token`` (all-admins mode).
    :param timeout_s: per-request timeout.
    :param credentials: (username, password) for ``POST /auth/token``.
    """

    sleep: Callable[[float], Any] = staticmethod(time.sleep)

    def __init__(self, base_url: str, jwt: str | None = None, timeout_s: float = 10.0,
                 credentials: tuple[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.jwt = jwt
        self.timeout_s = timeout_s
        self.credentials = credentials

    def _request(self, method: str, url: str, body: Any = None, auth: bool = True) -> ApiResponse:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self._jwt()}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        return with_retries(lambda: self._send(req), f"{method} {url}", self.sleep)

    def _send(self, req: urllib.request.Request) -> tuple[ApiResponse | None, BaseException | None, str | None]:
        retry_after = None
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw, retry_after = exc.code, exc.read(), exc.headers.get("Retry-After")
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:  # nothing answered: try again
            return None, exc, None
        try:
            payload = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = raw.decode(errors="replace")
        return ApiResponse(status, payload), None, retry_after

    def _jwt(self) -> str:
        if self.jwt is None:
            if self.credentials:
                user, password = self.credentials
                resp = self._request("POST", f"{self.base_url}/auth/token",
                                     {"username": user, "password": password}, auth=False)
            else:
                resp = self._request("GET", f"{self.base_url}/auth/token", auth=False)
            if not resp.ok or not isinstance(resp.data, dict) or "access_token" not in resp.data:
                raise RuntimeError(f"{self.base_url}/auth/token answered HTTP {resp.status}: {resp.detail()}; "
                                   "pass a JWT (AIRFLOW_API_TOKEN), or a username and password, for a server "
                                   "with logins")
            self.jwt = resp.data["access_token"]
        return self.jwt

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> ApiResponse:
        """Call a version-less path such as ``/dags/{dag_id}/dagRuns``."""
        return self._request(method, f"{self.base_url}/api/v2{path}", body)
