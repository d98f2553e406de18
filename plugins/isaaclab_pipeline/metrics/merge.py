"""Find and merge every event file of a run into one series per tag, sorted by step.

Files: every regular file named ``events.out.tfevents.*`` anywhere under the run root (several files
after a resume, ``rank_*`` folders when they hold events). Symlinked folders are not followed.

File order: by the wall_time of each file's first event, then by path; files with no readable first
event go last. Files are read in this order so tensor scalars whose metadata was written to an earlier
file are still recognised.

Duplicate (tag, step) rule -- the later write wins:

* "later" means the greater ``wall_time``;
* on equal ``wall_time`` the value later in file order wins, and inside one file the later record.

So after a restart from a checkpoint, the re-run steps replace the values of the crashed attempt, while
steps that only the first attempt wrote are kept. (TensorBoard's EventAccumulator instead purges every
value of a step greater than a restart's first step, and keeps duplicates side by side otherwise.)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from isaaclab_pipeline.metrics.events import (
    DEFAULT_CHUNK_SIZE,
    EVENT_FILE_MARKER,
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
        parts = by_tag[tag]
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


def read_run(event_root: Path | str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> RunScalars:
    """Read and merge every event file under ``event_root``.

    :param event_root: run directory (searched recursively) or a single event file.
    :param chunk_size: bytes per read, see :func:`~isaaclab_pipeline.metrics.events.read_event_file`.
    :return: the run's scalars, one sorted series per tag.
    :raises FileNotFoundError: no event file under ``event_root``.
    :raises EventFileCorruptError: a record fails its CRC check.
    """
    files = find_event_files(event_root)
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files ({EVENT_FILE_MARKER}.*) under {event_root}")
    ordered = order_event_files(files)
    plugin_names: dict[str, str] = {}
    per_file = [read_event_file(p, plugin_names=plugin_names, chunk_size=chunk_size) for p in ordered]
    series, dropped = merge_file_scalars(per_file)
    warnings = [w for fs in per_file for w in fs.warnings]
    if dropped:
        log.info("%d duplicate (tag, step) value(s) replaced by later writes", dropped)
    return RunScalars(files=ordered, series=series, scalars_read=sum(fs.scalars for fs in per_file),
                      duplicates_dropped=dropped, warnings=warnings)
