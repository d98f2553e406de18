"""The compute seam: submit a JobSpec, ask its status, read its log, cancel it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
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
    """What identifies a submitted job and what waiting on it needs; stored in XCom, so plain JSON values only.

    :param backend: the backend's name.
    :param job_id: the run's job UUID.
    :param external_id: the backend's id of the job (a Batch job id, a local job folder).
    :param details: backend facts (queue, region, ...).
    :param staging_uri: where the runner stages progress.json and its outputs.
    """

    backend: str
    job_id: str
    external_id: str
    details: dict[str, Any] = field(default_factory=dict)
    staging_uri: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the handle as a JSON-able dict, camelCase keys like the JobSpec's (``jobId``, ``stagingUri``)."""
        return {_camel(k): v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobHandle:
        """Rebuild a handle from ``to_dict`` output; the snake_case keys of runs started before the handle's keys
        were camelCase are read too (their XComs outlive the change)."""
        def get(name: str, default: Any = None) -> Any:
            return data.get(_camel(name), data.get(name, default))

        return cls(backend=get("backend"), job_id=get("job_id", ""), external_id=get("external_id"),
                   details=dict(get("details") or {}), staging_uri=get("staging_uri", ""))


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class JobStatus:
    """A job's state, and why it failed."""

    state: JobState
    reason: str = ""
    exit_code: int | None = None


@dataclass(frozen=True)
class PollerSpec:
    """How the trigger rebuilds a backend's poller in the triggerer: a name in ``backends.POLLERS`` and plain
    keyword arguments (serialized with the trigger)."""

    name: str
    kwargs: dict[str, Any]


class ComputeBackend(Protocol):
    """What every backend provides; operators never name a backend.

    ``submit`` is idempotent: a job already submitted for the same job id is reattached to unless it failed.
    ``status`` only reads: retrying an interrupted attempt belongs where the job runs (Batch's retryStrategy,
    the local wrapper's loop).
    """

    name: str

    def submit(self, spec: JobSpec) -> JobHandle: ...
    def status(self, handle: JobHandle) -> JobStatus: ...
    def log_tail(self, handle: JobHandle, lines: int = 40) -> list[str]: ...
    def cancel(self, handle: JobHandle, reason: str) -> None: ...
    def links(self, handle: JobHandle) -> dict[str, dict[str, Any]]:
        """The UI's extra links of this job: link key → the values its ``persist`` takes (none: no link)."""
        ...
    def poller(self, handle: JobHandle) -> PollerSpec:
        """What the wait's trigger polls this job with."""
        ...


@dataclass(frozen=True)
class Poll:
    """One look at a job from the trigger.

    :param state: where the job is.
    :param status: the backend's own word for it (a Batch status; ``attempt 2`` locally), reported on change.
    :param reason: why (Batch's statusReason, an exit code).
    :param attempts: attempts started so far.
    """

    state: JobState
    status: str
    reason: str = ""
    attempts: int = 1


class JobPoller(Protocol):
    """The trigger's view of one job; synchronous (the trigger runs it in a thread), plain to rebuild."""

    def poll(self) -> Poll: ...
    def read_log(self, offset: int) -> tuple[list[str], int]:
        """New complete log lines since ``offset`` (none where the log lives elsewhere, e.g. CloudWatch)."""
        ...
    def terminate(self, reason: str) -> None: ...


class JobAbandonedError(Exception):
    """Raised by a wait step's progress callback when whoever the job runs for stopped waiting for it (VAMS's
    execution was aborted or timed out): the wait step terminates the job and fails with this message."""
