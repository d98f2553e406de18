"""Compute backends: where a JobSpec runs. ``get_backend`` picks one from the deployment settings."""

from __future__ import annotations

from typing import Any

from isaaclab_pipeline.backends.base import ComputeBackend, JobHandle, JobPoller, JobState, JobStatus, Poll, PollerSpec
from isaaclab_pipeline.settings import PipelineSettings

__all__ = ["ComputeBackend", "JobHandle", "JobPoller", "JobState", "JobStatus", "Poll", "PollerSpec", "accounting",
           "get_backend", "get_poller"]

# the trigger's pollers, by PollerSpec.name: module and class, imported in the triggerer when needed
POLLERS = {
    "local": ("isaaclab_pipeline.backends.local", "LocalJobPoller"),
    "batch": ("isaaclab_pipeline.backends.batch", "BatchJobPoller"),
}


# each backend's accounting (its job's queue waits and cost, from a handle): a module with ``queue_waits`` and
# ``job_cost``, imported when needed (the runs view and the steps call them through timings and cost)
ACCOUNTING = {"local": "isaaclab_pipeline.backends.local", "batch": "isaaclab_pipeline.backends.batch"}


def accounting(name: str) -> Any:
    """The accounting module of the backend ``name`` (``queue_waits``, ``job_cost``)."""
    import importlib

    if name not in ACCOUNTING:
        raise ValueError(f"unknown backend {name!r}; known: {', '.join(ACCOUNTING)}")
    return importlib.import_module(ACCOUNTING[name])


def get_poller(name: str, kwargs: dict[str, Any]) -> JobPoller:
    """Rebuild a backend's poller from its ``PollerSpec`` fields."""
    import importlib

    if name not in POLLERS:
        raise ValueError(f"unknown job poller {name!r}; known: {', '.join(POLLERS)}")
    module, cls = POLLERS[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)


def get_backend(settings: PipelineSettings, dag_run_id: str | None = None) -> ComputeBackend:
    """Return the backend named by ``settings.compute_backend``.

    :param settings: the deployment settings.
    :param dag_run_id: the DAG run submitting (Batch names and tags its job with it; local ignores it).
    """
    if settings.compute_backend == "local":
        from isaaclab_pipeline.backends.local import LocalBackend

        return LocalBackend(settings)
    if settings.compute_backend == "batch":
        from isaaclab_pipeline.backends.batch import BatchBackend

        return BatchBackend(settings, dag_run_id)
    raise ValueError(f"Variable isaaclab_compute_backend is {settings.compute_backend!r}; use 'local' or 'batch'")
