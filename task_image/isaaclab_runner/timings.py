"""Where a job's time goes: the runner's phases, in seconds, for ``result.json`` and the last line of the log.

The phases are consecutive stretches of the runner's main thread, so they add up to the job's wall time:

``runnerStart``     the interpreter and the runner's imports (process start → ``JobRunner.run``)
``fetch``           the env package, checkpoints and the task's assets (the asset sync's wait)
``install``         finding Isaac Lab, the job's venv, ``pip install`` of the package, the task check
``kernelCacheRestore``  waiting for Warp's kernel cache (it restores beside the install; only the wait counts)
``isaacLabStart``   ``isaaclab train``/evaluate/play started → its first iteration (or episode batch) reported
``training``        first iteration → Isaac Lab exited (evaluate/play: their stepping)
``upload``          the run folder, the kernel cache saved back, the final log
``export``          waiting for the policy export once the upload is done (it runs beside the upload)
``other``           what falls between the above (a few messages, the checkpoint sync's stop)

``queueWait`` (submitted → running) is the backend's to know: the wait step adds it on the Airflow side.
Each attempt of an interrupted job keeps its own block under ``attempts``; the top-level numbers are their sums.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

PHASES = ("runnerStart", "fetch", "install", "kernelCacheRestore", "isaacLabStart", "training", "export", "upload",
          "other")
LABELS = {"queueWait": "queue", "runnerStart": "runner start", "fetch": "fetch", "install": "install",
          "kernelCacheRestore": "kernel cache", "isaacLabStart": "Isaac Lab start", "training": "training",
          "export": "export", "upload": "upload", "other": "other", "total": "total"}


def process_started() -> float:
    """This process's start time (epoch seconds), from ``/proc``; now where ``/proc`` is missing.

    The start is in clock ticks since boot; it is placed against ``/proc/uptime`` (10 ms resolution), not the boot
    time in ``/proc/stat`` (whole seconds: up to a second too early, which ``runnerStart`` would count).
    """
    try:
        ticks = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19])  # noqa: SIM115 - one read
        uptime = float(open("/proc/uptime").read().split()[0])  # noqa: SIM115 - one read
        return time.time() - max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


class Timings:
    """Phase stopwatch of one attempt: ``with timings.phase("install"): ...``; nested phases count once."""

    def __init__(self, attempt: int = 1, started_at: float | None = None) -> None:
        self.attempt = attempt
        self.started_at = process_started() if started_at is None else started_at  # epoch
        # the wall clock's start in monotonic time, so a clock step mid-job does not bend the phases
        self._t0 = time.monotonic() - max(0.0, time.time() - self.started_at)
        self.seconds: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self._open: str | None = None
        self.seconds["runnerStart"] = time.monotonic() - self._t0

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the block's wall time to ``name`` (inside another phase: to the outer one only)."""
        if self._open is not None:
            yield
            return
        self._open, start = name, time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - start)
            self._open = None

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to phase ``name``."""
        self.seconds[name] = self.seconds.get(name, 0.0) + max(0.0, seconds)

    def move(self, src: str, dst: str, seconds: float) -> None:
        """Move up to ``seconds`` of phase ``src`` to ``dst`` (Isaac Lab's start, measured inside its run)."""
        moved = min(max(0.0, seconds), self.seconds.get(src, 0.0))
        self.seconds[src] -= moved
        self.add(dst, moved)

    def finish(self) -> dict[str, Any]:
        """This attempt's block: every phase, ``other`` as the unclaimed rest, the total, start and end times."""
        total = time.monotonic() - self._t0
        claimed = sum(v for k, v in self.seconds.items() if k != "other")
        self.seconds["other"] = max(0.0, total - claimed)
        block: dict[str, Any] = {k: round(v, 3) for k, v in self.seconds.items()}
        block.update(total=round(total, 3), attempt=self.attempt, startedAt=round(self.started_at, 3),
                     finishedAt=round(self.started_at + total, 3))
        return block


def combine(attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """``result.json``'s ``timings``: the sums over the attempts, and each attempt's block under ``attempts``."""
    keys = ["queueWait", *PHASES, "total"]
    out: dict[str, Any] = {}
    for key in keys:
        values = [a[key] for a in attempts if isinstance(a.get(key), int | float)]
        if values:
            out[key] = round(sum(values), 3)
    out["attempts"] = attempts
    return out


def format_line(timings: dict[str, Any]) -> str:
    """The one line at the end of the task log: ``Timings: fetch 0.1s | install 3.0s | ... | total 25.3s``."""
    parts = [f"{LABELS[k]} {timings[k]:.1f}s" for k in LABELS
             if isinstance(timings.get(k), int | float) and (timings[k] >= 0.05 or k in ("queueWait", "total"))]
    n = len(timings.get("attempts") or [])
    return "Timings: " + " | ".join(parts) + (f" ({n} attempts)" if n > 1 else "")
