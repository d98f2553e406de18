"""Find and merge every event file of a run into one series per tag, sorted by step.

Files: every regular file named ``events.out.tfevents.*`` anywhere under the run root (several files
after a resume, ``rank_*`` folders when they hold events). Symlinked folders are not followed.

File order: by the wall_time of each file's first event, then by path; files with no readable first
event go last. Files are read in this order so tensor scalars whose metadata was written to an earlier
file are still recognised.

Restarts -- how Isaac Lab resumes: an interrupted attempt's retry loads a checkpoint and logs again from its
iteration, into a new event file. So, per tag and in file order, a file whose first step is at or below a step
already seen restarts that tag there: every earlier file's value of that tag at a step >= that first step,
logged before the restarting record (wall_time), belongs to the abandoned attempt and is dropped (TensorBoard's
purge, per tag). Steps before the restart, which
only the interrupted attempt wrote, are kept: metrics.csv holds every step 0..N-1 once.

Duplicates left after that (one file writing a step twice, or two files starting at the same step) -- the
later write wins:

* "later" means the greater ``wall_time``;
* on equal ``wall_time`` the value later in file order wins, and inside one file the later record.

Corrupt files: with ``tolerate_corrupt`` a file whose record fails its CRC check keeps the records before the
bad one, and the problem is reported in ``RunScalars.problems`` (the convert step publishes them); otherwise
:class:`EventFileCorruptError` is raised.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from isaaclab_pipeline.metrics.events import (
    DEFAULT_CHUNK_SIZE,
    EVENT_FILE_MARKER,
    EventFileCorruptError,
    FileScalars,
    ScalarSeries,
    first_wall_time,
    is_event_file,
    read_event_file,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RunScalars:
    """Every scalar of a run: one series per tag, sorted by step, one value per step."""

    files: list[Path]
    series: dict[str, ScalarSeries]
    scalars_read: int = 0
    duplicates_dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    problems: list[dict[str, object]] = field(default_factory=list)  # corrupt files: path, offset, reason, kept

    @property
    def scalars(self) -> int:
        """Number of (tag, step) values kept."""
        return sum(len(s) for s in self.series.values())

    @property
    def tags(self) -> list[str]:
        """Tag names, sorted."""
        return sorted(self.series)


def find_event_files(root: Path | str) -> list[Path]:
    """Every ``events.out.tfevents.*`` file under ``root`` (recursive), or ``root`` itself if it is one.

    :param root: a run directory or a single event file.
    :return: the files, sorted by path (see :func:`order_event_files` for the merge order).
    """
    root = Path(root)
    if root.is_file():
        return [root] if is_event_file(root) else []
    found: list[Path] = []
    for folder, _dirs, names in os.walk(root):  # os.walk does not follow symlinked folders: no loops
        found.extend(p for p in (Path(folder, name) for name in names) if is_event_file(p))
    return sorted(p for p in found if p.is_file())


def order_event_files(files: list[Path]) -> list[Path]:
    """Sort event files into merge order: first event's wall_time, then path; unreadable ones last.

    :param files: event files.
    """
    keyed = []
    for path in files:
        wall = first_wall_time(path)
        keyed.append((wall is None, wall if wall is not None else 0.0, str(path), path))
    keyed.sort(key=lambda k: k[:3])
    return [k[3] for k in keyed]


def merge_file_scalars(files: list[FileScalars]) -> tuple[dict[str, ScalarSeries], int]:
    """Merge per-file series (given in file order) into one series per tag, applying the duplicate rule.

    :param files: per-file scalars, in merge order.
    :return: (series per tag sorted by step with unique steps, number of duplicate values dropped).
    """
    import numpy as np

    by_tag: dict[str, list[ScalarSeries]] = {}
    for fs in files:
        for tag, series in fs.series.items():
            by_tag.setdefault(tag, []).append(series)
    merged: dict[str, ScalarSeries] = {}
    dropped = 0
    for tag in sorted(by_tag):
        parts, purged = _apply_restarts(by_tag[tag])
        dropped += purged
        if len(parts) == 1:
            steps, walls, values = parts[0].steps, parts[0].wall_times, parts[0].values
        else:
            steps = np.concatenate([p.steps for p in parts])
            walls = np.concatenate([p.wall_times for p in parts])
            values = np.concatenate([p.values for p in parts])
        if len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1])):
            merged[tag] = ScalarSeries(steps, walls, values)  # the common case: strictly increasing, no dups
            continue
        # Sort by (step, wall_time, write position); the last entry of each step group is the winner.
        order = np.lexsort((np.arange(len(steps)), walls, steps))
        s_steps = steps[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = s_steps[1:] != s_steps[:-1]
        keep = order[last]
        dropped += len(steps) - len(keep)
        merged[tag] = ScalarSeries(steps[keep], walls[keep], values[keep])
    return merged, dropped


def _apply_restarts(parts: list[ScalarSeries]) -> tuple[list[ScalarSeries], int]:
    """Drop, for one tag, the values a later file (a resumed attempt) logs again: see the module docstring.

    :param parts: the tag's series per file, in merge order.
    :return: the series left, and how many values were dropped.
    """
    kept: list[ScalarSeries] = []
    dropped = 0
    for part in parts:
        if len(part) and kept:
            first, first_wall = int(part.steps[0]), float(part.wall_times[0])
            trimmed = []
            for k in kept:
                keep = (k.steps < first) | (k.wall_times > first_wall)  # only what was logged before the restart
                dropped += int(len(k) - keep.sum())
                trimmed.append(ScalarSeries(k.steps[keep], k.wall_times[keep], k.values[keep]) if not keep.all()
                               else k)
            kept = trimmed
        kept.append(part)
    return [k for k in kept if len(k)] or kept[-1:], dropped


def read_tolerant(path: Path, plugin_names: dict[str, str], chunk_size: int) -> tuple[FileScalars, dict | None]:
    """Read one event file; a corrupt record ends it: the records before it are kept and the problem returned."""
    try:
        return read_event_file(path, plugin_names=plugin_names, chunk_size=chunk_size), None
    except EventFileCorruptError as exc:
        with tempfile.TemporaryDirectory(prefix="isaaclab-events-") as tmp:
            head = Path(tmp) / path.name
            with open(path, "rb") as src, open(head, "wb") as dst:
                shutil.copyfileobj(_Limited(src, exc.offset), dst)
            fs = read_event_file(head, plugin_names=plugin_names, chunk_size=chunk_size)
        fs.path = path
        msg = (f"{path}: corrupt record at byte offset {exc.offset} ({exc.reason}); kept the {fs.records} records "
               "before it, skipped the rest of the file")
        log.warning("%s", msg)
        fs.warnings = [msg]
        return fs, {"file": str(path), "offset": exc.offset, "reason": exc.reason, "recordsKept": fs.records,
                    "scalarsKept": fs.scalars}


class _Limited:
    """A binary file object that ends after ``limit`` bytes."""

    def __init__(self, f: object, limit: int) -> None:
        self.f, self.left = f, limit

    def read(self, n: int = -1) -> bytes:
        """Read at most ``n`` bytes, never past the limit."""
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.f.read(n) if n else b""  # type: ignore[attr-defined]
        self.left -= len(data)
        return data


def read_run(event_root: Path | str, *, chunk_size: int = DEFAULT_CHUNK_SIZE,
             tolerate_corrupt: bool = False) -> RunScalars:
    """Read and merge every event file under ``event_root``.

    :param event_root: run directory (searched recursively) or a single event file.
    :param chunk_size: bytes per read, see :func:`~isaaclab_pipeline.metrics.events.read_event_file`.
    :param tolerate_corrupt: keep what precedes a corrupt record and report it in ``problems`` instead of raising.
    :return: the run's scalars, one sorted series per tag.
    :raises FileNotFoundError: no event file under ``event_root``.
    :raises EventFileCorruptError: a record fails its CRC check (unless ``tolerate_corrupt``).
    """
    files = find_event_files(event_root)
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files ({EVENT_FILE_MARKER}.*) under {event_root}")
    ordered = order_event_files(files)
    plugin_names: dict[str, str] = {}
    problems: list[dict[str, object]] = []
    if tolerate_corrupt:
        per_file = []
        for p in ordered:
            fs, problem = read_tolerant(p, plugin_names, chunk_size)
            per_file.append(fs)
            if problem:
                problems.append(problem)
    else:
        per_file = [read_event_file(p, plugin_names=plugin_names, chunk_size=chunk_size) for p in ordered]
    series, dropped = merge_file_scalars(per_file)
    warnings = [w for fs in per_file for w in fs.warnings]
    if dropped:
        log.info("%d (tag, step) value(s) replaced by a restart or a later write", dropped)
    return RunScalars(files=ordered, series=series, scalars_read=sum(fs.scalars for fs in per_file),
                      duplicates_dropped=dropped, warnings=warnings, problems=problems)
