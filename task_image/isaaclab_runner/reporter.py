"""What a job tells the Airflow side through staging: runner.log (a tee of everything printed), progress.json
while it runs, and result.json last (its presence says the staging folder is complete)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from isaaclab_runner import staging_layout, storage
from isaaclab_runner.sync import CheckpointSync

PROGRESS_INTERVAL_S = 2.0  # progress.json is rewritten at most this often (an S3 PUT each time in production)
LOG_NAME = staging_layout.RUNNER_LOG
PROGRESS_NAME = staging_layout.PROGRESS
RESULT_NAME = staging_layout.RESULT
HISTORY_POINTS = 400  # of the reward curve kept in progress.json (a few kB)


class Tee:
    """Write every line both to our stdout (streamed by the backend) and to runner.log (published)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = path.open("a", buffering=1)

    def write(self, text: str) -> None:
        """Write ``text`` to both sinks."""
        sys.stdout.write(text)
        sys.stdout.flush()
        self.file.write(text)


class StagingReporter:
    """Keeps the job's log, progress and result, and writes them to the staging URI.

    :param staging: the job's staging URI.
    :param workdir: the job's scratch folder (runner.log and the scratch copies of the JSON files live there).
    :param progress: the first progress (job id, state, mode).
    """

    def __init__(self, staging: str, workdir: Path, progress: dict[str, Any]) -> None:
        self.staging = staging
        self.workdir = workdir
        self.tee = Tee(workdir / LOG_NAME)
        self.progress = progress
        self.uploads = True  # rank 0 owns the staging folder; a worker node sends only its log (``finish``)
        self.node_rank = 0
        self.sync: CheckpointSync | None = None  # while training, progress goes through the sync thread
        self._last_progress = 0.0

    def write(self, text: str) -> None:
        """Copy Isaac Lab's output (or any text) to stdout and runner.log."""
        self.tee.write(text)

    def say(self, message: str) -> None:
        """Print a runner message (prefixed, so it stands out among Isaac Lab's output)."""
        self.tee.write(f"[runner] {message}\n")

    def set_state(self, state: str) -> None:
        """Set the job's state and stage the progress at once."""
        self.progress["state"] = state
        self.write_progress(force=True)

    def write_progress(self, force: bool = False) -> None:
        """Stage progress.json: through the sync thread while training (never waits on the store), else at
        most every ``PROGRESS_INTERVAL_S`` unless ``force``.

        ``history`` keeps the ``[iteration, meanReward]`` points so far (at most ``HISTORY_POINTS``: every other
        point is dropped when full), so a page opened mid-run draws the whole curve.
        """
        if not self.uploads:
            return
        self._record_history()
        if self.sync is not None and not force:
            self.sync.put_progress(self.progress)
            return
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.progress["updatedAt"] = time.time()
        storage.write_text(storage.join(self.staging, PROGRESS_NAME), json.dumps(self.progress),
                           self.workdir / PROGRESS_NAME)

    def _record_history(self) -> None:
        it, reward = self.progress.get("iteration"), self.progress.get("meanReward")
        if not isinstance(it, int) or not isinstance(reward, int | float):
            return
        history: list[list[float]] = self.progress.setdefault("history", [])
        if history and history[-1][0] == it:
            history[-1] = [it, reward]
            return
        history.append([it, reward])
        if len(history) > HISTORY_POINTS:
            del history[1:-1:2]  # thin the middle, keep the first and the latest

    def finish(self, result: dict[str, Any], succeeded: bool) -> None:
        """Close the log and stage it with the final progress and ``result`` (result.json last).

        A worker node of a multi-node job stages only its log, under ``nodes/<rank>/``.
        """
        self.progress["state"] = "succeeded" if succeeded else "failed"
        self.tee.file.close()
        log = self.workdir / LOG_NAME
        if not self.uploads:
            storage.upload(log, storage.join(self.staging, staging_layout.NODES_DIR, str(self.node_rank), LOG_NAME))
            return
        self.write_progress(force=True)
        storage.upload(log, storage.join(self.staging, LOG_NAME))
        storage.write_text(storage.join(self.staging, RESULT_NAME), json.dumps(result, indent=2),
                           self.workdir / RESULT_NAME)
