"""The job's timings, completed on the Airflow side: the queue wait is the backend's to know.

The runner writes ``timings`` into ``result.json`` (published as ``job-result.json``): its phases per attempt
(``isaaclab_runner/timings.py``) and their sums. The wait step adds ``queueWait`` (submitted → running) to each
attempt and to the sums, from the backend:

- **Batch**: DescribeJobs' ``createdAt`` → the first attempt's ``startedAt``; a later attempt waits from the one
  before it stopped (``stoppedAt``) to its own ``startedAt``.
- **local**: the job folder's ``spec.json`` (written at submit) → the runner's start (the attempt's ``startedAt``);
  a later attempt from the one before it finished.

``record_timings`` never fails the step that calls it: the timings are a report.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from isaaclab_pipeline import staging_layout
from isaaclab_pipeline.backends.base import JobHandle

log = logging.getLogger(__name__)

# the runner's phases, in its order (isaaclab_runner.timings.PHASES); the two sides share no code
PHASES = ("queueWait", "runnerStart", "fetch", "install", "kernelCacheRestore", "isaacLabStart", "training",
          "export", "upload", "other")
LABELS = {"queueWait": "queue", "runnerStart": "runner start", "fetch": "fetch", "install": "install",
          "kernelCacheRestore": "kernel cache", "isaacLabStart": "Isaac Lab start", "training": "training",
          "export": "export", "upload": "upload", "other": "other", "total": "total"}


def queue_waits(handle: Mapping[str, Any], attempts: list[Mapping[str, Any]],
                describe: Callable[[str], Mapping[str, Any]] | None = None,
                aws_conn_id: str | None = "aws_default") -> list[float | None]:
    """Seconds each attempt waited to run, from the job's backend (``backends.accounting``; None where it does not
    say).

    :param handle: the JobHandle as its dict (``JobHandle.to_dict``).
    :param attempts: the runner's per-attempt blocks (``startedAt``/``finishedAt``, epoch seconds).
    :param describe: Batch job id → DescribeJobs entry (default: the provider's BatchClientHook).
    """
    from isaaclab_pipeline.backends import accounting

    job = JobHandle.from_dict(handle)
    return accounting(job.backend).queue_waits(job, attempts, describe=describe, aws_conn_id=aws_conn_id)


def with_queue_waits(timings: Mapping[str, Any], waits: list[float | None]) -> dict[str, Any]:
    """``timings`` with each attempt's ``queueWait`` and their sum (``total`` stays the job's own time)."""
    attempts = [dict(a) for a in timings.get("attempts") or []]
    for block, wait in zip(attempts, waits, strict=False):
        if wait is not None:
            block["queueWait"] = wait
    out = {k: v for k, v in timings.items() if k != "attempts"}
    known = [a["queueWait"] for a in attempts if isinstance(a.get("queueWait"), int | float)]
    if known:
        out["queueWait"] = round(sum(known), 3)
    out["attempts"] = attempts
    return out


def format_line(timings: Mapping[str, Any]) -> str:
    """One line: ``Timings: queue 0.4s | fetch 0.1s | install 3.0s | ... | total 25.3s``."""
    parts = [f"{LABELS[k]} {timings[k]:.1f}s" for k in LABELS
             if isinstance(timings.get(k), int | float) and (timings[k] >= 0.05 or k in ("queueWait", "total"))]
    n = len(timings.get("attempts") or [])
    return "Timings: " + " | ".join(parts) + (f" ({n} attempts)" if n > 1 else "")


def record_timings(handle: Mapping[str, Any] | None, staging_uri: str, aws_conn_id: str | None = "aws_default",
                   describe: Callable[[str], Mapping[str, Any]] | None = None) -> dict[str, Any] | None:
    """Add the backend's queue wait to the staged ``result.json``'s ``timings``; never raises.

    :return: the completed timings, or None when the job left none (the reason is logged).
    """
    from isaaclab_pipeline import storage

    if not handle:
        return None
    job_id = JobHandle.from_dict(handle).job_id
    uri = storage.join(staging_uri, staging_layout.RESULT)
    try:
        store = storage.for_uri(uri, aws_conn_id)
        raw = store.read_bytes(uri)
        result = json.loads(raw) if raw else None
        if not isinstance(result, dict) or not isinstance(result.get("timings"), dict):
            log.warning("Job %s left no timings in %s", job_id, uri)
            return None
        try:
            waits = queue_waits(handle, result["timings"].get("attempts") or [], describe, aws_conn_id)
        except Exception as exc:  # the runner's phases still stand without the queue wait
            log.warning("Queue wait of job %s not known: %s: %s", job_id, type(exc).__name__, exc)
            waits = []
        result["timings"] = with_queue_waits(result["timings"], waits)
        with tempfile.TemporaryDirectory(prefix="isaaclab-timings-") as tmp:
            path = Path(tmp) / staging_layout.RESULT
            path.write_text(json.dumps(result, indent=2))
            store.upload(path, uri)
    except Exception as exc:  # a report: it never fails the run
        log.warning("Timings of job %s not recorded: %s: %s", job_id, type(exc).__name__, exc)
        return None
    return result["timings"]


def run_timings(docs: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A run's timings for ``summary.json``: each phase summed over its jobs (a sweep's trials) and attempts."""
    good = [d for d in docs if isinstance(d, Mapping)]
    if not good:
        return None
    out: dict[str, Any] = {}
    for key in (*PHASES, "total"):
        values = [d[key] for d in good if isinstance(d.get(key), int | float)]
        if values:
            out[key] = round(sum(values), 3)
    out["attempts"] = sum(len(d.get("attempts") or []) or 1 for d in good)
    out["jobs"] = len(good)
    return out
