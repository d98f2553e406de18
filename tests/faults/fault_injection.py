"""Fault injection for the fault suite: a moto server on loopback, and botocore event hooks that make chosen AWS
calls fail the way AWS fails (throttling, 5xx, access denied) on every client created while they are active."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MOTO = Path(sys.executable).parent / "moto_server"


def moto_server() -> contextlib.AbstractContextManager[str]:
    """A moto server on a free loopback port; yields its URL."""
    from pipeline_env import moto_on_loopback

    return moto_on_loopback()


def reset_moto(url: str, batch_without_docker: bool = True) -> None:
    """Fresh moto state (and Batch jobs that succeed without Docker)."""
    def post(path: str, body: bytes = b"") -> None:
        urllib.request.urlopen(urllib.request.Request(url + path, data=body, method="POST"))

    post("/moto-api/reset")
    if batch_without_docker:
        post("/moto-api/config", json.dumps({"batch": {"use_docker": False}}).encode())


@dataclass
class Rule:
    """Fail ``times`` calls of ``service.operation`` (globs) whose params match ``when``; -1: every call."""

    service: str
    operation: str
    code: str
    status: int
    times: int = 1
    when: Callable[[dict[str, Any]], bool] | None = None
    hits: int = 0


@dataclass
class Faults:
    """The rules in force and every AWS call seen (service, operation, selected params)."""

    rules: list[Rule] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    after: list[tuple[str, str, Callable[[dict[str, Any]], None]]] = field(default_factory=list)

    def on_answer(self, service: str, operation: str, fn: Callable[[dict[str, Any]], None]) -> None:
        """Call ``fn(parsed answer)`` after each successful ``service.operation`` (it may change the answer)."""
        self.after.append((service, operation, fn))

    def after_call(self, event_name: str, parsed: dict[str, Any], http_response: Any = None, **_: Any) -> None:
        """botocore ``after-call`` hook: run the ``on_answer`` callbacks."""
        _, service, operation = event_name.split(".", 2)
        if getattr(http_response, "status_code", 200) >= 300:
            return
        for svc, op, fn in list(self.after):
            if fnmatch.fnmatch(service, svc) and fnmatch.fnmatch(operation, op):
                fn(parsed)

    def fail(self, service: str, operation: str, code: str, status: int, times: int = 1,
             when: Callable[[dict[str, Any]], bool] | None = None) -> Rule:
        rule = Rule(service, operation, code, status, times, when)
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def seen(self, service: str, operation: str) -> list[dict[str, Any]]:
        return [p for s, o, p in self.calls if s == service and o == operation]

    def before_parameter_build(self, event_name: str, params: dict[str, Any], **_: Any) -> None:
        """botocore ``before-parameter-build`` hook (it sees the call's own parameters): raise the error AWS would
        answer with, as botocore raises it (a ``ClientError`` with the code and HTTP status), instead of sending."""
        from botocore.exceptions import ClientError

        _, service, operation = event_name.split(".", 2)
        with self.lock:
            self.calls.append((service, operation, {k: params.get(k) for k in ("Bucket", "Key", "jobs", "jobId",
                                                                                  "jobName") if k in params}))
            for rule in self.rules:
                if not (fnmatch.fnmatch(service, rule.service) and fnmatch.fnmatch(operation, rule.operation)):
                    continue
                if rule.when is not None and not rule.when(params):
                    continue
                if rule.times == 0:
                    continue
                rule.times -= 1 if rule.times > 0 else 0
                rule.hits += 1
                raise ClientError({"Error": {"Code": rule.code, "Message": f"injected {rule.code}"},
                                   "ResponseMetadata": {"HTTPStatusCode": rule.status, "HTTPHeaders": {}}}, operation)


@contextlib.contextmanager
def injected(faults: Faults) -> Iterator[Faults]:
    """Register ``faults.before_parameter_build`` on every botocore client created while this is active."""
    from botocore.client import ClientCreator

    original = ClientCreator.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register_first("before-parameter-build", faults.before_parameter_build)
        client.meta.events.register("after-call", faults.after_call)
        return client

    ClientCreator.create_client = create_client  # type: ignore[method-assign]
    try:
        yield faults
    finally:
        ClientCreator.create_client = original  # type: ignore[method-assign]
