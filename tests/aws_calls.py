"""Records every AWS API operation the project's code makes, per side, through botocore's event hooks.

A pytest plugin (``-p aws_calls`` with ``tests/`` on ``sys.path``) or a plain context (``recording()``): every
botocore client created while it is active gets a ``provide-client-params`` handler, so each operation is seen
with its API parameters before it is sent, whether a moto server, ``mock_aws`` or botocore's Stubber answers it.

Which side made a call is read from the call stack: the innermost frame that is not a library's (botocore, boto3,
s3transfer, the amazon provider, threading/asyncio plumbing) names it:

- ``airflow``: ``plugins/isaaclab_pipeline`` (runs on MWAA workers and triggerers: the MWAA execution role);
- ``runner``: ``task_image/isaaclab_runner`` (runs in the Batch container: the Batch job role);
- ``bridge``: ``vams_bridge/vams_bridge`` (runs as the VAMS bridge Lambda: its role);
- ``test``: a test's own setup or assertion calls (not checked).

A call made on a worker thread (``asyncio.to_thread`` in the trigger, s3transfer's upload/download pool) has only
library frames; it takes the side of the code that submitted the work (``ThreadPoolExecutor.submit`` is wrapped
to carry it), else the side of the test module's code under test (``DEFAULT_SIDE``), else ``unknown`` (which
the checks refuse).

With ``--aws-calls-out FILE`` the plugin writes the calls as JSON at the end of the session.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SIDES = {
    str(REPO / "plugins" / "isaaclab_pipeline"): "airflow",
    str(REPO / "task_image" / "isaaclab_runner"): "runner",
    str(REPO / "vams_bridge" / "vams_bridge"): "bridge",
    str(REPO / "tests"): "test",
}
LIBRARY_PARTS = ("/botocore/", "/boto3/", "/s3transfer/", "/airflow/", "/moto/", "/concurrent/", "/asyncio/",
                 "/threading.py", "/contextlib.py", "/functools.py", "/contextvars", "/_pytest/", "/pluggy/")
# The code under test of each test module, for calls made on worker threads (only library frames on the stack).
DEFAULT_SIDE = {
    "test_batch_moto.py": "airflow", "test_vams_callbacks.py": "airflow", "test_batch_backend.py": "airflow",
    "test_publish.py": "airflow", "test_vams_bridge.py": "bridge", "test_sync.py": "runner",
    "test_vams_token_store.py": "airflow", "test_template_iam.py": "airflow",
}
# API parameters kept per call (they name the resource); everything else (bodies, tokens) is dropped.
KEPT = ("Bucket", "Key", "Prefix", "CopySource", "Name", "jobQueue", "jobDefinition", "jobs", "jobId", "tags",
        "resourceArn", "logGroupName", "logStreamName", "logStreamNamePrefix", "Path", "Method", "Delete",
        "cluster", "containerInstances", "computeEnvironments", "Entries", "EventBusName")

CALLS: list[dict[str, Any]] = []
_state = threading.local()
_current_test: list[str] = [""]
_installed: list[Any] = []


def _own_side(frame: Any) -> str | None:
    """The side of the innermost non-library frame from ``frame`` outwards; None if there are only libraries."""
    while frame is not None:
        path = frame.f_code.co_filename
        if path == __file__:  # this recorder's own wrappers
            frame = frame.f_back
            continue
        for root, side in SIDES.items():
            if path.startswith(root + "/"):
                return side
        library = ("site-packages" in path or path.startswith((sys.base_prefix, sys.prefix))
                   or any(part in path for part in LIBRARY_PARTS) or path.startswith("<"))
        if not library:
            return "unknown"
        frame = frame.f_back
    return getattr(_state, "origin", None)  # a worker thread: the side that submitted its work


def _side_of_stack() -> str:
    side = _own_side(sys._getframe(2))
    return side or DEFAULT_SIDE.get(Path(_current_test[0].split("::")[0]).name, "unknown")


def _keep(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _keep(v) for k, v in value.items() if k in KEPT or k in ("Objects",)}
    if isinstance(value, list):
        return [_keep(v) for v in value]
    return value


def _record(client: Any) -> Any:
    def handler(params: dict[str, Any], model: Any, context: dict[str, Any] | None = None, **_: Any) -> None:
        record = {
            "side": _side_of_stack(),
            "service": model.service_model.service_name,
            "signing": model.service_model.signing_name,
            "operation": model.name,
            "region": client.meta.region_name,
            "params": {k: _keep(v) for k, v in params.items() if k in KEPT},
            "test": _current_test[0],
            "status": None,
        }
        CALLS.append(record)
        if context is not None:
            context["aws_calls_record"] = record
    return handler


def _status(http_response: Any = None, context: dict[str, Any] | None = None, **_: Any) -> None:
    """The HTTP status the call got (a 404 on a read means the role must also list the prefix)."""
    record = (context or {}).get("aws_calls_record")
    if record is not None:
        record["status"] = getattr(http_response, "status_code", None)


def install() -> None:
    """Hook every botocore client created from now on, and carry sides into worker threads (idempotent)."""
    if _installed:
        return
    from concurrent.futures import ThreadPoolExecutor

    from botocore.client import ClientCreator

    original = ClientCreator.create_client
    original_submit = ThreadPoolExecutor.submit

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        client.meta.events.register("provide-client-params.*.*", _record(client))
        client.meta.events.register("after-call.*.*", _status)
        return client

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        origin = _own_side(sys._getframe(1))

        def run(*a: Any, **k: Any) -> Any:
            previous = getattr(_state, "origin", None)
            _state.origin = origin
            try:
                return fn(*a, **k)
            finally:
                _state.origin = previous
        return original_submit(self, run, *args, **kwargs)

    ClientCreator.create_client = create_client
    ThreadPoolExecutor.submit = submit
    _installed.append((original, original_submit))


def uninstall() -> None:
    """Stop hooking new clients and thread pools (clients already made keep recording)."""
    if _installed:
        from concurrent.futures import ThreadPoolExecutor

        from botocore.client import ClientCreator

        ClientCreator.create_client, ThreadPoolExecutor.submit = _installed.pop()


@contextmanager
def recording(test: str = "") -> Iterator[list[dict[str, Any]]]:
    """Record the calls of clients created inside the block; yields the list they are appended to."""
    start = len(CALLS)
    _current_test[0] = test
    was_installed = bool(_installed)
    install()
    view: list[dict[str, Any]] = []
    try:
        yield view
    finally:
        view.extend(CALLS[start:])
        if not was_installed:
            uninstall()


# ---- the pytest plugin -------------------------------------------------------------------------------------

def pytest_addoption(parser: Any) -> None:
    parser.addoption("--aws-calls-out", default=None, help="write the recorded AWS calls here (JSON)")


def pytest_configure(config: Any) -> None:
    install()


def pytest_runtest_protocol(item: Any, nextitem: Any) -> None:
    _current_test[0] = item.nodeid


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    out = session.config.getoption("--aws-calls-out")
    if out:
        Path(out).write_text(json.dumps(CALLS, indent=1, default=str))
