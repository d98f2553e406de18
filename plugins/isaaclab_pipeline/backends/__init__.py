"""Compute backends: where a JobSpec runs. ``get_backend`` picks one from the deployment settings."""

from __future__ import annotations

from isaaclab_pipeline.backends.base import ComputeBackend, JobHandle, JobState, JobStatus
from isaaclab_pipeline.settings import PipelineSettings

__all__ = ["ComputeBackend", "JobHandle", "JobState", "JobStatus", "get_backend"]


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
