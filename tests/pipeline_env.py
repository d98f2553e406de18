"""What the tests share: the repository and the Isaac Lab venv's python, scoped environment variables and Airflow task
policies, a moto server on loopback, and the moto Batch resources (a compute environment, a queue, the single-node
and multi-node job definitions)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ISAACLAB_PYTHON = REPO / ".venvs" / "isaaclab" / "bin" / "python"  # Isaac Lab 3.0.0 (kit-less) and the runner


@contextmanager
def scoped_environ(values: Mapping[str, str], restore: Iterable[str] = ()) -> Iterator[None]:
    """Set environment variables for the block; put back what was there (or nothing) afterwards, also for the
    ``restore`` keys the block may set itself."""
    saved = {k: os.environ.get(k) for k in [*values, *restore]}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def task_policy(change: Callable[[Any], None]) -> Iterator[None]:
    """Apply ``change`` to every task after Airflow's own policy (a cluster policy: how a deployment sets retries)."""
    import airflow.settings

    original = airflow.settings.task_policy

    def policy(task: Any) -> None:
        original(task)
        change(task)

    airflow.settings.task_policy = policy
    try:
        yield
    finally:
        airflow.settings.task_policy = original


def no_retries(task: Any) -> None:
    """Failures under test fail at once (the DAG's retries are 30 s apart)."""
    task.retries = 0


def quick_retries(task: Any) -> None:
    """The DAG's retries (at most one), without their 30 s wait."""
    task.retries = min(task.retries or 0, 1)
    task.retry_delay = timedelta(seconds=1)


def create_batch_resources(batch: Any, iam: Any) -> None:
    """A compute environment, the queue ``gpu-queue`` and the job definitions ``isaaclab-single`` (container) and
    ``isaaclab-mnp`` (multi-node, 2 nodes), as the CloudFormation stack names them in tests."""
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")
    ce = batch.create_compute_environment(computeEnvironmentName="gpu-ce", type="UNMANAGED", state="ENABLED",
                                          serviceRole=role["Role"]["Arn"])["computeEnvironmentArn"]
    batch.create_job_queue(jobQueueName="gpu-queue", state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])
    container = {"image": "isaaclab-runner:latest", "command": ["python", "-m", "isaaclab_runner", "--help"],
                 "resourceRequirements": [{"type": "VCPU", "value": "4"}, {"type": "MEMORY", "value": "16384"},
                                          {"type": "GPU", "value": "1"}]}
    batch.register_job_definition(jobDefinitionName="isaaclab-single", type="container",
                                  containerProperties=container)
    batch.register_job_definition(jobDefinitionName="isaaclab-mnp", type="multinode", nodeProperties={
        "numNodes": 2, "mainNode": 0, "nodeRangeProperties": [{"targetNodes": "0:", "container": container}]})


MOTO_SERVER = Path(sys.executable).parent / "moto_server"


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_on_loopback() -> Iterator[str]:
    """``moto_server`` on a free loopback port (run from a scratch folder: its recorder writes to the working
    directory); yields its URL once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = tempfile.mkdtemp(prefix="moto-")
    proc = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def dag_home(home: Path, variables: Mapping[str, str] | None = None, example_env: bool = True) -> Iterator[Path]:
    """A private pipeline home for real DAG runs (``dag.test``): fast polling, Airflow's DB migrated, and the example
    env package in the asset store; ``variables`` are more ``AIRFLOW_VAR_ISAACLAB_<NAME>`` settings. Everything set
    is put back afterwards, so one test module's deployment never leaks into the next."""
    env = {"ISAACLAB_PIPELINE_HOME": str(home), "AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S": "1",
           **{f"AIRFLOW_VAR_ISAACLAB_{k.upper()}": v for k, v in (variables or {}).items()}}
    with scoped_environ(env, restore=["AIRFLOW_VAR_ISAACLAB_DEFAULT_OUTPUT_URI"]):
        os.environ.pop("AIRFLOW_VAR_ISAACLAB_DEFAULT_OUTPUT_URI", None)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        if example_env:
            from isaaclab_tools.cli import EXAMPLE_ENV, package_env

            package_env(EXAMPLE_ENV, home / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz")
        yield home


@contextmanager
def api_server(airflow: Path, env: Mapping[str, str], home: Path, timeout_s: float = 180) -> Iterator[str]:
    """``airflow api-server`` on a free loopback port (its DB migrated and DAGs serialized by the caller); yields its
    URL once ``/api/v2/monitor/health`` answers, and stops it after."""
    port = free_port()
    log_path = home / "api-server.log"
    log = log_path.open("w")
    proc = subprocess.Popen([str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                            env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"api-server did not start:\n{log_path.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def mwaa_bundle_builder():  # noqa: ANN201 - the script's module
    """scripts/build_mwaa_bundle.py loaded as a module (it is a script, not a package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "build_mwaa_bundle.py"
    spec = importlib.util.spec_from_file_location("build_mwaa_bundle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The stand-in runner: what the DAG tests that need no real training give the local backend instead of the Isaac Lab
# venv's python (the backend runs ``<it> -m isaaclab_runner run --spec F``). Its prelude reads the spec and offers
# ``spec``, ``spec_path``, ``staging``, ``stage(rel, data)``, ``stage_events()`` (a real Isaac Lab event file into
# run/) and ``succeed(**extra)`` (result.json, as the runner writes it last) to the test's own ``body``.
STAND_IN_EVENTS = REPO / "tests" / "fixtures" / "isaaclab_events"
_STAND_IN_PRELUDE = '''import json, os, shutil, sys, time
from pathlib import Path
spec_path = Path(sys.argv[sys.argv.index("--spec") + 1])
spec = json.loads(spec_path.read_text())
staging = Path(spec["stagingUri"].removeprefix("file://"))
staging.mkdir(parents=True, exist_ok=True)
EVENTS = Path(%r)
def stage(rel, data):
    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
    (staging / rel).write_bytes(data if isinstance(data, bytes) else data.encode())
def stage_events():
    for p in EVENTS.iterdir():
        stage("run/" + p.name, p.read_bytes())
def succeed(**extra):
    stage("result.json", json.dumps({"jobId": spec["jobId"], "status": "succeeded", "exitCode": 0, **extra}))
'''


def stand_in_runner(path: Path, body: str, python: Path | str | None = None) -> Path:
    """Write an executable stand-in for the Isaac Lab venv's python at ``path``: the prelude above, then ``body``.

    :param python: the interpreter that runs it (default: this one; the Isaac Lab venv's to call the runner's code).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{python or sys.executable}\n" + _STAND_IN_PRELUDE % str(STAND_IN_EVENTS) + body)
    path.chmod(0o755)
    return path
