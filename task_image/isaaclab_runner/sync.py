"""Checkpoint and progress sync while training runs, and the resume point of a retried attempt.

``CheckpointSync`` is a background thread of the runner: it watches Isaac Lab's log folder and uploads every
new checkpoint to ``{stagingUri}/checkpoints/<path under the watched folder>`` and the latest progress to
``{stagingUri}/progress.json``. Uploads happen on that thread, never on the one reading Isaac Lab's output,
so a slow store does not slow training. On SIGTERM (spot reclaim, Batch terminate) the runner stops Isaac Lab
and calls ``flush()``: whatever was saved is staged before the container is killed.

TensorBoard's event files are staged too, while they grow (``events_key``: at the key the final upload gives them,
``run/<path in the run folder>``, at most every ``events_interval_s``), so ``tensorboard --logdir <staging>`` shows
a run mid-training. Each upload is the whole file, and the final flush sends it once more if it changed, so the
staged copy ends complete and the convert step reads it once; the runner's final upload leaves out the ones that
are current (``staged_events``).

``find_resume_checkpoint`` is what the next attempt calls first: the latest staged checkpoint and the
iterations left, so at most one save interval of work is lost.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isaaclab_runner import staging_layout, storage

log = logging.getLogger("isaaclab_runner.sync")

CHECKPOINTS_DIR = staging_layout.CHECKPOINTS_DIR  # under the staging URI
RUN_DIR = staging_layout.RUN_DIR  # the final upload of Isaac Lab's run folder (runner.py)

Uploader = Callable[[Path, str], None]
EVENTS_MARKER = staging_layout.EVENT_FILE_MARKER
EVENTS_INTERVAL_ENV = "ISAACLAB_RUNNER_EVENTS_SYNC_S"
EVENTS_INTERVAL_S = 30.0  # a growing event file is sent whole, so not on every pass


class CheckpointSync:
    """Upload new checkpoints and progress to staging from a background thread.

    :param watch_root: folder to watch recursively (the runner's ``<cwd>/logs``; it may not exist yet).
    :param staging: the job's staging URI.
    :param patterns: file-name globs of checkpoints (the library's ``CHECKPOINT_PATTERNS``, last path part).
    :param scratch: a local folder for progress.json before upload.
    :param interval_s: how often the folder is scanned.
    :param upload: ``(local path, uri) -> None``; ``storage.upload`` by default.
    :param events_key: an event file → its key under the staging URI (None: not staged while training).
    :param events_interval_s: how often a growing event file is sent again (``ISAACLAB_RUNNER_EVENTS_SYNC_S``).
    """

    def __init__(self, watch_root: Path, staging: str, patterns: Iterable[str], scratch: Path,
                 interval_s: float = 2.0, upload: Uploader | None = None,
                 events_key: Callable[[Path], str | None] | None = None, events_interval_s: float | None = None
                 ) -> None:
        self.watch_root = watch_root
        self.staging = staging
        self.patterns = tuple(p.rsplit("/", 1)[-1] for p in patterns)
        self.scratch = scratch
        self.interval_s = interval_s
        self._upload = upload or storage.upload
        self._seen: dict[Path, tuple[int, int]] = {}  # last scan's (size, mtime_ns): unchanged twice = complete
        self._done: dict[Path, tuple[int, int]] = {}  # what was uploaded, with the signature it had
        self._progress: dict[str, Any] | None = None
        self._progress_sent: str | None = None
        self._lock = threading.Lock()  # one upload pass at a time (the thread's and flush's)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.uploaded: list[str] = []
        self.errors = 0
        self._events_key = events_key
        self.events_interval_s = (float(os.environ.get(EVENTS_INTERVAL_ENV) or EVENTS_INTERVAL_S)
                                  if events_interval_s is None else events_interval_s)
        self._events_done: dict[Path, tuple[int, int]] = {}
        self._events_sent_at = 0.0
        self.event_uploads = 0

    def start(self) -> CheckpointSync:
        """Start the background thread; returns self."""
        self._thread = threading.Thread(target=self._loop, name="checkpoint-sync", daemon=True)
        self._thread.start()
        return self

    def put_progress(self, progress: dict[str, Any]) -> None:
        """Queue ``progress`` for upload (only the latest one is kept); never blocks on the store."""
        self._progress = dict(progress)
        self._wake.set()

    def flush(self, timeout: float = 20.0) -> bool:
        """Upload every checkpoint that exists now (finished or not) and the latest progress.

        Call after Isaac Lab has exited (so no file is half written). Returns False if the lock could not be
        taken within ``timeout`` seconds (an upload of the thread is stuck).
        """
        if not self._lock.acquire(timeout=timeout):
            log.warning("checkpoint sync: flush timed out after %.0fs", timeout)
            return False
        try:
            self._pass(final=True)
        finally:
            self._lock.release()
        return True

    def stop(self, timeout: float = 20.0) -> bool:
        """Flush, then end the thread. Returns what ``flush`` returned."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.flush(timeout)

    def staged(self) -> dict[Path, str]:
        """Each local checkpoint whose staged copy is current (unchanged since its upload), with its URI.

        Call after ``stop``: the runner's final upload leaves these out, so no checkpoint crosses the wire twice.
        """
        return {path: self._uri(path) for path in _unchanged(self._done)}

    def staged_events(self) -> list[Path]:
        """The event files whose staged copy is current (call after ``stop``)."""
        return _unchanged(self._events_done)

    def __enter__(self) -> CheckpointSync:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._pass(final=False)
            self._wake.wait(self.interval_s)
            self._wake.clear()

    def _pass(self, final: bool) -> None:
        """Scan once; upload checkpoints that are complete (or all of them when ``final``) and the progress."""
        current = {}
        if self.watch_root.is_dir():
            for path in self.watch_root.rglob("*"):
                if any(fnmatch.fnmatch(path.name, p) for p in self.patterns) and path.is_file():
                    st = path.stat()
                    current[path] = (st.st_size, st.st_mtime_ns)
        for path in sorted(current, key=_checkpoint_order):
            sig = current[path]
            if self._done.get(path) == sig or (not final and self._seen.get(path) != sig):
                continue  # already staged, or still being written
            uri = self._uri(path)
            if self._try(self._upload, path, uri):
                self._done[path] = sig
                self.uploaded.append(uri)
                log.info("checkpoint sync: staged %s", uri)
        self._seen = current
        self._pass_events(final)
        progress = self._progress
        if progress is not None:
            text = json.dumps(progress)
            if text != self._progress_sent:
                scratch = self.scratch / staging_layout.PROGRESS
                if self._try(storage.write_text, storage.join(self.staging, staging_layout.PROGRESS), text, scratch):
                    self._progress_sent = text

    def _pass_events(self, final: bool) -> None:
        """Send every event file that changed since its last upload, at most every ``events_interval_s``."""
        now = time.monotonic()
        if self._events_key is None or not self.watch_root.is_dir() or (
                not final and now - self._events_sent_at < self.events_interval_s):
            return
        self._events_sent_at = now
        for path in sorted(self.watch_root.rglob(f"{EVENTS_MARKER}*")):
            try:
                st = path.stat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            key = self._events_key(path) if self._events_done.get(path) != sig else None
            if key is not None and self._try(self._upload, path, storage.join(self.staging, key)):
                self._events_done[path] = sig
                self.event_uploads += 1

    def _uri(self, path: Path) -> str:
        """Where a checkpoint under the watched folder is staged."""
        return storage.join(self.staging, CHECKPOINTS_DIR, path.relative_to(self.watch_root).as_posix())

    def _try(self, fn: Callable[..., None], *args: Any) -> bool:
        # a store hiccup must not end the sync (or training); the file is retried on the next pass
        try:
            fn(*args)
            return True
        except Exception as exc:
            self.errors += 1
            log.warning("checkpoint sync: %s%r failed: %s", getattr(fn, "__name__", fn), args[1:2], exc)
            return False


@dataclass(frozen=True)
class ResumePoint:
    """The checkpoint a retried attempt resumes from.

    ``iteration`` is the number in the file name. rsl_rl 5 saves ``model_<it>.pt`` after the 0-based iteration
    ``it`` and, on load, starts again at ``it``; so ``--max_iterations remaining`` (maxIterations - it) ends on
    the same final checkpoint as an uninterrupted run (``model_<maxIterations - 1>.pt``).
    """

    uri: str
    iteration: int
    max_iterations: int

    @property
    def remaining(self) -> int:
        """Iterations to pass as ``--max_iterations`` with ``--checkpoint``; 0 when training already finished."""
        return 0 if self.complete else self.max_iterations - self.iteration

    @property
    def complete(self) -> bool:
        """True when the final checkpoint of the run is staged already."""
        return self.iteration >= self.max_iterations - 1


def _unchanged(done: dict[Path, tuple[int, int]]) -> list[Path]:
    """The files of ``done`` whose size and mtime are still the signature they were staged with."""
    out = []
    for path, sig in done.items():
        try:
            st = path.stat()
        except OSError:
            continue
        if (st.st_size, st.st_mtime_ns) == sig:
            out.append(path)
    return out


def find_resume_checkpoint(staging: str, max_iterations: int, pattern: str) -> ResumePoint | None:
    """Return the latest staged checkpoint of this job (synced or in the final run upload), or None.

    :param staging: the job's staging URI.
    :param max_iterations: the spec's ``maxIterations``.
    :param pattern: a regex matched against the file name; group 1 is the iteration number (the library's
        ``CHECKPOINT_REGEX``).
    """
    rx = re.compile(pattern)
    best: ResumePoint | None = None
    for sub in (CHECKPOINTS_DIR, RUN_DIR):
        for uri in storage.list_uris(storage.join(staging, sub)):
            match = rx.search(uri.rsplit("/", 1)[-1])
            if match and (best is None or int(match.group(1)) > best.iteration):
                best = ResumePoint(uri, int(match.group(1)), max_iterations)
    return best


def fetch_checkpoint(point: ResumePoint, dest_dir: Path) -> Path:
    """Download the resume checkpoint into ``dest_dir`` (keeping its name) and return the local path."""
    return storage.download(point.uri, dest_dir / point.uri.rsplit("/", 1)[-1])


def _checkpoint_order(path: Path) -> tuple[str, int]:
    # oldest first within a folder, so a flush cut short by SIGKILL has staged the earlier ones
    numbers = re.findall(r"\d+", path.name)
    return (str(path.parent), int(numbers[-1]) if numbers else -1)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass (for callers and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
