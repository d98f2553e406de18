"""What jobs stage and publish, as the runs view reads it (through ``readers``), with its caches: a finished run's
files once, a running job's progress each time (sampled into its curve), a running Batch job's cost at most every
``cost_ttl_s``.

The reward curve of a finished trial is its ``metrics.csv``'s mean-reward column. While a trial runs, progress.json
holds only the latest iteration, so the curve is the series of progress.json samples this process has seen
(merged with a ``history`` list, should progress.json carry one); the page also keeps every point it received,
so the curve grows while the page is open whichever api-server worker answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from isaaclab_pipeline.backends.base import JobHandle
from isaaclab_pipeline.readers import headline_metrics, progress_points, read_json, read_metrics_csv

log = logging.getLogger(__name__)

CURVE_POINTS = 200  # at most this many points per curve
HISTORY_JOBS = 200  # running jobs whose sampled progress is kept


class Artifacts:
    """Reads what jobs stage and publish, with caches: a finished run's files once, a running job's progress each
    time (sampled into its curve), a running Batch job's cost at most every ``cost_ttl_s``.

    :param aws_conn_id: the connection for s3:// URIs.
    :param read: URI → bytes or None (default: ``storage.for_uri(uri).read_bytes``; tests pass their own).
    :param cost_of: job handle → cost document (default: ``cost.cost_of``).
    """

    def __init__(self, aws_conn_id: str | None = "aws_default", read: Callable[[str], bytes | None] | None = None,
                 cost_of: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
                 cost_ttl_s: float = 30.0) -> None:
        self.aws_conn_id = aws_conn_id
        self._read = read
        self._cost_of = cost_of
        self.cost_ttl_s = cost_ttl_s
        self._lock = threading.Lock()
        self._final: OrderedDict[str, Any] = OrderedDict()  # finished runs' documents, by URI
        self._costs: dict[str, tuple[float, Any]] = {}
        self._history: OrderedDict[str, dict[int, float]] = OrderedDict()

    def read(self, uri: str) -> bytes | None:
        """The bytes at ``uri`` (None: absent)."""
        if self._read is not None:
            return self._read(uri)
        from isaaclab_pipeline import storage

        return storage.for_uri(uri, self.aws_conn_id).read_bytes(uri)

    def read_json(self, uri: str, final: bool, version: str = "") -> Any:
        """A JSON document at ``uri`` (None: absent or unreadable); cached for good when ``final``.

        :param version: what changes when the file may have been written again (a cleared run's step ended again).
        """
        key = f"{uri}@{version}"
        if final and key in self._final:
            return self._final[key]
        doc = read_json(self.read(uri))  # None: absent, caught mid-write, or not ours
        if final and doc is not None:
            self._remember(key, doc)
        return doc

    def curve_of_metrics(self, uri: str, version: str = "") -> list[list[float]]:
        """The mean-reward curve of a published metrics.csv (cached for good)."""
        key = f"curve:{uri}@{version}"
        if key in self._final:
            return self._final[key]
        raw = self.read(uri)
        curve = reward_curve_from_csv(raw.decode(errors="replace")) if raw else []
        if raw:
            self._remember(key, curve)
        return curve

    def sample(self, job_key: str, progress: Mapping[str, Any] | None) -> list[list[float]]:
        """Add a progress.json sample to the job's curve and return the curve so far."""
        with self._lock:
            points = self._history.setdefault(job_key, {})
            self._history.move_to_end(job_key)
            while len(self._history) > HISTORY_JOBS:
                self._history.popitem(last=False)
            for it, reward in progress_points(progress):
                points[it] = reward
            return downsample(sorted([it, r] for it, r in points.items()))

    def cost(self, handle: Mapping[str, Any], final: bool, version: str = "") -> dict[str, Any] | None:
        """The job's cost worked out from its backend (a live estimate while it runs)."""
        job = JobHandle.from_dict(handle)
        key = f"{job.backend}:{job.external_id}@{version}"
        now = time.monotonic()
        cached = self._costs.get(key)
        if cached and (cached[0] == float("inf") or now - cached[0] < self.cost_ttl_s):
            return cached[1]
        try:
            if self._cost_of is not None:
                doc = self._cost_of(handle)
            else:
                from isaaclab_pipeline.cost import cost_of

                doc = cost_of(handle, self.aws_conn_id)
        except Exception as exc:
            log.warning("runs view: cost of %s not worked out: %s: %s", key, type(exc).__name__, exc)
            doc = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        self._costs[key] = (float("inf") if final and not doc.get("error") else now, doc)
        return doc

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._final[key] = value
            while len(self._final) > 2000:
                self._final.popitem(last=False)


def downsample(points: list[list[float]], limit: int = CURVE_POINTS) -> list[list[float]]:
    """At most ``limit`` points, evenly spread, the first and the last kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def reward_curve_from_csv(text: str) -> list[list[float]]:
    """[[step, mean reward], ...] of a metrics.csv (the library's reward tag; non-finite skipped), downsampled."""
    return downsample([[step, value] for step, value in read_metrics_csv(text).reward()])


def result_of(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The headline numbers of a published summary.json (training: mean reward; evaluation: return)."""
    if not isinstance(summary, Mapping):
        return None
    return headline_metrics(summary) or None
