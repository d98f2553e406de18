"""Compute backends: where a JobSpec runs. ``get_backend`` picks one from the deployment settings."""

from __future__ import annotations

from isaaclab_pipeline.backends.base import ComputeBackend, JobHandle, JobState, JobStatus
from isaaclab_pipeline.settings import PipelineSettings

__all__ = ["ComputeBackend", "JobHandle", "JobState", "JobStatus", "get_backend"]


def get_backend(settings: PipelineSettings) -> ComputeBackend:
    """Return the backend named by ``settings.compute_backend``."""
    if settings.compute_backend == "local":
        from isaaclab_pipeline.backends.local import LocalBackend

        return LocalBackend(settings)
    raise NotImplementedError(
        f"compute backend {settings.compute_backend!r} is not available in this version; set the Variable "
        "isaaclab_compute_backend to 'local'"
    )
