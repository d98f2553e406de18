"""Deployment settings: what the operators of the pipeline configure, never the user's conf.

Each setting is an Airflow Variable named ``isaaclab_<name>``; like every Variable it can also be given as
the environment variable ``AIRFLOW_VAR_ISAACLAB_<NAME>``. With nothing configured the pipeline runs on the
embedded default: the local backend, with storage under ``~/.isaaclab-pipeline`` (``ISAACLAB_PIPELINE_HOME``).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("local", "batch")


def get_setting(name: str, default: str | None = None) -> str | None:
    """Return the Airflow Variable ``isaaclab_<name>`` (or its ``AIRFLOW_VAR_`` env form), else ``default``."""
    key = f"isaaclab_{name}"
    env = os.environ.get(f"AIRFLOW_VAR_{key.upper()}")
    if env is not None:
        return env
    try:
        from airflow.sdk import Variable

        return Variable.get(key, default=default)
    except Exception:  # outside a task (CLI, unit tests) there is no Variable store to ask
        return default


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
        )
