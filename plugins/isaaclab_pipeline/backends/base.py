"""The compute seam: submit a JobSpec, ask its status, read its log, cancel it."""

from __future__ import annotations

import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from isaaclab_pipeline.jobspec import JobSpec

log = logging.getLogger(__name__)


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


# Transient AWS errors: what a retry with backoff can cure (throttling, 5xx, timeouts, dropped connections).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException",
})
TRANSIENT_CODES = THROTTLING_CODES | frozenset({
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "ServiceUnavailable",
    "ServiceUnavailableException", "ServerException", "ClientException.Timeout", "IDPCommunicationError",
})


def is_transient(exc: BaseException) -> bool:
    """True for an AWS error a retry can cure: throttling, HTTP 429/5xx, timeouts, connection errors."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in TRANSIENT_CODES or (isinstance(status, int) and (status == 429 or status >= 500)):
            return True
        if code:
            return False  # an answer with an error code: AccessDenied, NoSuchBucket, ValidationError... stays
    try:
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import HTTPClientError, ReadTimeoutError
    except ImportError:  # pragma: no cover - botocore is always there with the amazon provider
        return isinstance(exc, (TimeoutError, ConnectionError))
    return isinstance(exc, (BotoConnectionError, HTTPClientError, ReadTimeoutError, TimeoutError, ConnectionError))


def backoff_delay(attempt: int, base_s: float = 1.0, cap_s: float = 60.0) -> float:
    """Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap_s, base_s * 2 ** attempt))


def retry_transient[T](call: Callable[[], T], *, attempts: int = 6, base_s: float = 1.0, cap_s: float = 30.0,
                    what: str = "AWS call", sleep: Callable[[float], Any] = time.sleep) -> T:
    """Run ``call``, retrying transient errors (:func:`is_transient`) with jittered exponential backoff.

    :raises Exception: the last transient error after ``attempts`` tries, or the first other error at once.
    """
    for attempt in range(attempts):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts - 1:
                raise
            delay = backoff_delay(attempt, base_s, cap_s)
            log.warning("%s failed (%s: %s); retry %d/%d in %.1fs", what, type(exc).__name__, exc, attempt + 1,
                        attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")


SUPERSEDED = "superseded"  # {staging root}/superseded/{job id}/submission-<n>/: what earlier submissions staged


def archive_staging(staging_uri: str, aws_conn_id: str | None = "aws_default") -> str | None:
    """Move what an earlier submission of this job staged out of the way, before a new submission starts.

    Staging is scoped per submission: a resubmitted job (after a failed one, or a cleared DAG run) must neither
    resume from the old job's checkpoints nor have them converted and published as its own. Nothing is deleted:
    the old files go to ``{staging root}/superseded/{job id}/submission-<n>/``.

    :return: the archive's URI, or None if the staging folder was empty.
    """
    from isaaclab_pipeline import storage

    store = storage.for_uri(staging_uri, aws_conn_id)
    if not retry_transient(lambda: store.list(staging_uri), what=f"listing {staging_uri}"):
        return None
    root, job = staging_uri.rstrip("/").rsplit("/", 1)
    base = storage.join(root, SUPERSEDED, job)
    taken = {storage.relative_key(o.uri, base).split("/", 1)[0] for o in store.list(base)}
    number = 1
    while f"submission-{number}" in taken:
        number += 1
    dest = storage.join(base, f"submission-{number}")
    moved = retry_transient(lambda: storage.move_tree(staging_uri, dest, aws_conn_id), what=f"archiving {staging_uri}")
    log.warning("Staging of an earlier submission (%d file(s)) moved to %s: the new job starts from empty staging",
                moved, dest)
    return dest
