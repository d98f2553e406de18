"""The compute seam: submit a JobSpec, ask its status, read its log, cancel it."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from isaaclab_pipeline.jobspec import JobSpec


class JobState(enum.StrEnum):
    """Where a job is; backends map their own states onto these."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def done(self) -> bool:
        """True once the job will not change state again."""
        return self in (JobState.SUCCEEDED, JobState.FAILED)


@dataclass(frozen=True)
class JobHandle:
    """What identifies a submitted job; stored in XCom, so plain JSON values only."""

    backend: str
    job_id: str
    external_id: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the handle as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobHandle:
        """Rebuild a handle from ``to_dict`` output."""
        return cls(**data)


@dataclass(frozen=True)
class JobStatus:
    """A job's state, and why it failed."""

    state: JobState
    reason: str = ""
    exit_code: int | None = None


class ComputeBackend(Protocol):
    """What every backend provides. ``submit`` is idempotent: a job already submitted for the same
    job id is reattached to unless it failed."""

    name: str

    def submit(self, spec: JobSpec) -> JobHandle: ...
    def status(self, handle: JobHandle) -> JobStatus: ...
    def read_log(self, handle: JobHandle, offset: int) -> tuple[list[str], int]: ...
    def cancel(self, handle: JobHandle, reason: str) -> None: ...
