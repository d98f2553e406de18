"""The two ways to reach Airflow's REST API: MWAA's ``InvokeRestApi`` and a plain api-server over HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


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

    Args:
        client: a boto3 ``mwaa`` client.
        env_name: the MWAA environment's name.
    """

    def __init__(self, client: Any, env_name: str) -> None:
        self.client = client
        self.env_name = env_name

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> ApiResponse:
        """Call a version-less path such as ``/dags/{dag_id}/dagRuns``; Airflow's 4xx/5xx come back as statuses."""
        args: dict[str, Any] = {"Name": self.env_name, "Path": path, "Method": method}
        if body is not None:
            args["Body"] = body
        try:
            resp = self.client.invoke_rest_api(**args)
        except Exception as exc:
            err = getattr(exc, "response", None) or {}
            # RestApiClientException (4xx) / RestApiServerException (5xx) carry Airflow's own answer
            if "RestApiStatusCode" in err:
                return ApiResponse(int(err["RestApiStatusCode"]), err.get("RestApiResponse"))
            raise
        return ApiResponse(int(resp["RestApiStatusCode"]), resp.get("RestApiResponse"))


class HttpApi:
    """Airflow's REST API of a self-hosted api-server (``{base_url}/api/v2``), with a JWT bearer token.

    Args:
        base_url: e.g. ``http://127.0.0.1:8080``.
        jwt: a token from ``/auth/token``; None fetches one with ``GET /auth/token`` (all-admins mode).
        timeout_s: per-request timeout.
    """

    def __init__(self, base_url: str, jwt: str | None = None, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.jwt = jwt
        self.timeout_s = timeout_s

    def _request(self, method: str, url: str, body: Any = None, auth: bool = True) -> ApiResponse:
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self._jwt()}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            payload = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            payload = raw.decode(errors="replace")
        return ApiResponse(status, payload)

    def _jwt(self) -> str:
        if self.jwt is None:
            resp = self._request("GET", f"{self.base_url}/auth/token", auth=False)
            if not resp.ok or not isinstance(resp.data, dict):
                raise RuntimeError(f"GET /auth/token answered HTTP {resp.status}: {resp.detail()}; "
                                   "pass a JWT (AIRFLOW_API_TOKEN) for a server with logins")
            self.jwt = resp.data["access_token"]
        return self.jwt

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> ApiResponse:
        """Call a version-less path such as ``/dags/{dag_id}/dagRuns``."""
        return self._request(method, f"{self.base_url}/api/v2{path}", body)
