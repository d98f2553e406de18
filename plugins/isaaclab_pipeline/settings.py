"""Deployment settings: what the operators of the pipeline configure, never the user's conf.

Each setting is an Airflow Variable named ``isaaclab_<name>``; like every Variable it can also be given as
the environment variable ``AIRFLOW_VAR_ISAACLAB_<NAME>``. With nothing configured the pipeline runs on the
embedded default: the local backend, with storage under ``~/.isaaclab-pipeline`` (``ISAACLAB_PIPELINE_HOME``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("local", "batch")


_ABSENT = "\x00isaaclab-setting-absent\x00"  # what Variable.get returns for "not set" (a value nobody stores)


class SettingsUnavailableError(RuntimeError):
    """An Airflow Variable could not be read (API server, metadata DB or secrets backend error).

    Never turned into the default: on a deployment a failed read of ``isaaclab_compute_backend`` would otherwise
    silently become the local backend. Transient: the task fails and retries.
    """


def get_setting(name: str, default: str | None = None) -> str | None:
    """Return the Airflow Variable ``isaaclab_<name>`` (or its ``AIRFLOW_VAR_`` env form), else ``default``.

    ``default`` is used only when the Variable is known to be unset; a read that failed raises.

    :raises SettingsUnavailableError: if the Variable could not be read.
    """
    key = f"isaaclab_{name}"
    env = os.environ.get(f"AIRFLOW_VAR_{key.upper()}")
    if env is not None:
        return env
    try:
        from airflow.sdk import Variable
    except ImportError:  # no Airflow in this interpreter: nothing but the environment to ask
        return default
    try:
        value = Variable.get(key, default=_ABSENT)
    except Exception as exc:
        raise SettingsUnavailableError(f"could not read the Airflow Variable {key} ({type(exc).__name__}: {exc}); "
                                       "not falling back to its default, the task will retry") from exc
    if value != _ABSENT:
        return value
    confirmed = _confirm_absent(key)
    return default if confirmed is None else confirmed


def _confirm_absent(key: str) -> str | None:
    """Inside a task, Airflow's secrets chain turns an API server error into "not found"; ask the API server
    again, directly, and tell a real absence (None) from a failed read (raise). Outside a task: None.

    :return: the value, if the Variable turns out to be set.
    :raises SettingsUnavailableError: if the API server cannot answer.
    """
    try:
        from airflow.sdk.exceptions import ErrorType
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.comms import ErrorResponse, GetVariable, VariableResult
    except ImportError:
        return None
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if comms is None:  # the CLI, unit tests: the environment and the metadata DB were asked
        return None
    try:
        msg = comms.send(GetVariable(key=key))
    except Exception as exc:
        raise SettingsUnavailableError(f"could not read the Airflow Variable {key} from the API server "
                                       f"({type(exc).__name__}: {exc}); not falling back to its default") from exc
    if isinstance(msg, ErrorResponse):
        if msg.error == ErrorType.VARIABLE_NOT_FOUND:
            return None
        raise SettingsUnavailableError(f"could not read the Airflow Variable {key}: the API server answered "
                                       f"{msg.error.value} {msg.detail}; not falling back to its default")
    if isinstance(msg, VariableResult):
        return msg.value
    return None


def pipeline_home() -> Path:
    """Return the local root for the embedded default's assets, staging, jobs and outputs."""
    return Path(os.environ.get("ISAACLAB_PIPELINE_HOME", Path.home() / ".isaaclab-pipeline")).resolve()


def _default_isaaclab_python() -> str:
    """Find the Isaac Lab venv the Makefile creates (``.venvs/isaaclab``) above this package."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / ".venvs" / "isaaclab" / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return ""


@dataclass(frozen=True)
class PipelineSettings:
    """The settings one run uses, read once per task."""

    compute_backend: str = "local"
    staging_uri: str = ""
    aws_conn_id: str = "aws_default"
    device: str = "auto"
    overrides: list[str] = field(default_factory=list)
    isaaclab_python: str = ""
    poll_interval_s: float = 5.0
    # AWS Batch (compute_backend "batch"); names shared with the CloudFormation template
    batch_job_queue: str = ""
    batch_multinode_job_queue: str = ""  # Batch runs no multi-node parallel job on Spot: an on-demand queue
    batch_job_definition: str = ""
    batch_multinode_job_definition: str = ""
    batch_gpus_per_node: int = 1
    batch_max_runtime_s: int | None = None
    # how often a deferred wait wakes a worker to log progress (and heartbeat VAMS)
    heartbeat_interval_s: float = 600.0
    # local backend: attempts of a job interrupted by SIGTERM (Batch's retryStrategy, locally)
    local_max_attempts: int = 3
    # where a conf without outputS3Path publishes ("" on Batch unless set: the conf must then say)
    default_output_uri: str = ""
    # the s3:// locations confs may read from and publish to (required on Batch; docs/security.md)
    allowed_uri_prefixes: tuple[str, ...] = ()
    # where jobs share Warp's kernel cache and built env-package wheels (s3:// on Batch; "" = no cache)
    cache_uri: str = ""
    # no GPU waits on a stuck setup.py longer than this (the env package's whole install); None: the runner's 600 s
    install_timeout_s: int | None = None
    # NVIDIA's Isaac assets kept by the deployment (s3:// on Batch, a folder locally; "" = NVIDIA's asset server)
    asset_mirror_uri: str = ""
    # sweeps (docs/experiments.md): trials one conf may ask for, and jobs of one sweep running at once
    max_trials: int = 16
    max_concurrent_jobs: int = 1
    # MLflow tracking, off unless a tracking URI is set (mlflow is then imported; docs/experiments.md)
    mlflow_tracking_uri: str = ""
    mlflow_experiment: str = "isaac-lab-training"

    @property
    def max_nodes(self) -> int:
        """The most nodes one job may use: a multi-node parallel job on Batch, one process locally."""
        return 16 if self.compute_backend == "batch" else 1

    @classmethod
    def load(cls) -> PipelineSettings:
        """Read every setting, validating the ones a typo would silently break."""
        backend = (get_setting("compute_backend", "local") or "local").strip().lower()
        if backend not in BACKENDS:
            raise ValueError(f"Variable isaaclab_compute_backend is {backend!r}; use one of {', '.join(BACKENDS)}")
        overrides = json.loads(get_setting("overrides", "[]") or "[]")
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise ValueError("Variable isaaclab_overrides must be a JSON list of strings, "
                             'e.g. ["agent.save_interval=25"]')
        return cls(
            compute_backend=backend,
            staging_uri=get_setting("staging_uri") or str(pipeline_home() / "staging"),
            aws_conn_id=get_setting("aws_conn_id", "aws_default") or "aws_default",
            device=get_setting("device", "auto") or "auto",
            overrides=overrides,
            isaaclab_python=get_setting("isaaclab_python") or _default_isaaclab_python() or sys.executable,
            poll_interval_s=float(get_setting("poll_interval_s", "5") or 5),
            batch_job_queue=get_setting("batch_job_queue", "") or "",
            batch_multinode_job_queue=get_setting("batch_multinode_job_queue", "") or "",
            batch_job_definition=get_setting("batch_job_definition", "") or "",
            batch_multinode_job_definition=get_setting("batch_multinode_job_definition", "") or "",
            batch_gpus_per_node=_positive_int("batch_gpus_per_node", 1),
            batch_max_runtime_s=_max_runtime(),
            heartbeat_interval_s=float(get_setting("heartbeat_interval_s", "600") or 600),
            local_max_attempts=_positive_int("local_max_attempts", 3),
            default_output_uri=get_setting("default_output_uri")
            or (str(pipeline_home() / "outputs") if backend == "local" else ""),
            allowed_uri_prefixes=parse_uri_prefixes(get_setting("allowed_uri_prefixes", "") or ""),
            cache_uri=get_setting("cache_uri") or (str(pipeline_home() / "cache") if backend == "local" else ""),
            install_timeout_s=_positive_int("install_timeout_s", None),
            asset_mirror_uri=(get_setting("asset_mirror_uri", "") or "").strip() or _default_asset_mirror(backend),
            max_trials=_positive_int("max_trials", 16),
            # one job at a time on a workstation (a CPU or one GPU); Batch queues what its compute environment can't run
            max_concurrent_jobs=_positive_int("max_concurrent_jobs", 1 if backend == "local" else 4),
            mlflow_tracking_uri=(get_setting("mlflow_tracking_uri", "") or "").strip(),
            mlflow_experiment=(get_setting("mlflow_experiment", "") or "").strip() or "isaac-lab-training",
        )


def _default_asset_mirror(backend: str) -> str:
    """Locally, ``{pipeline home}/asset-mirror`` once it holds a manifest (``make mirror-assets``); else none."""
    folder = pipeline_home() / "asset-mirror"
    return str(folder) if backend == "local" and (folder / "asset-manifest.json").is_file() else ""


def parse_uri_prefixes(raw: str) -> tuple[str, ...]:
    """Parse the Variable ``isaaclab_allowed_uri_prefixes``: a JSON list, or entries separated by commas or spaces.

    Each entry is ``s3://<bucket>`` or ``s3://<bucket>/<prefix>``; it allows that bucket or that folder.

    :raises ValueError: naming the Variable and the bad entry.
    """
    raw = raw.strip()
    if not raw:
        return ()
    if raw.startswith("["):
        try:
            entries = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"Variable isaaclab_allowed_uri_prefixes is not a JSON list: {exc}") from exc
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise ValueError("Variable isaaclab_allowed_uri_prefixes must be a JSON list of s3:// prefixes")
    else:
        entries = raw.replace(",", " ").split()
    out = []
    for entry in entries:
        bucket, _, key = entry.removeprefix("s3://").partition("/")
        parts = key.rstrip("/").split("/") if key.rstrip("/") else []
        if (not entry.startswith("s3://") or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket)
                or any(p in ("", ".", "..") for p in parts)):
            raise ValueError(f"Variable isaaclab_allowed_uri_prefixes: {entry!r} is not s3://<bucket>[/<prefix>]")
        out.append(f"s3://{bucket}/" + (key.rstrip("/") + "/" if parts else ""))
    return tuple(out)


def _positive_int(name: str, default: int | None) -> int | None:
    """Read an integer setting that must be >= 1, naming the Variable when it is not."""
    raw = get_setting(name)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"Variable isaaclab_{name} is {raw!r}; set a whole number >= 1")
    return value


# wait_for_job's execution_timeout (24 h) must outlast Batch's 3 attempts plus time in the queue
MAX_RUNTIME_LIMIT_S = 7 * 3600


def _max_runtime() -> int | None:
    """``isaaclab_batch_max_runtime_s``, refused above 7 h (3 attempts + queueing must end within the wait's 24 h)."""
    value = _positive_int("batch_max_runtime_s", None)
    if value is not None and value > MAX_RUNTIME_LIMIT_S:
        raise ValueError(f"Variable isaaclab_batch_max_runtime_s is {value}; at most {MAX_RUNTIME_LIMIT_S} (7 h): "
                         "Batch retries a job up to 3 times, and wait_for_job gives up after 24 h")
    return value
