"""``convert_run``: a run's TensorBoard event files → metrics.csv, summary.json, reward_curve.png."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isaaclab_pipeline.metrics.merge import RunScalars, read_run

log = logging.getLogger(__name__)

CSV_NAME = "metrics.csv"
SUMMARY_NAME = "summary.json"
PLOT_NAME = "reward_curve.png"
PROBLEMS_NAME = "metrics-problems.json"  # written only when an event file could not be read whole


@dataclass(slots=True)
class ConvertResult:
    """What :func:`convert_run` read and wrote."""

    csv_path: Path
    summary_path: Path
    plot_path: Path | None  # None when the run has neither Train/mean_reward nor Train/mean_episode_length
    files: int  # event files read
    scalars: int  # (tag, step) values in the table, after duplicate resolution
    steps: int  # rows of metrics.csv
    tags: list[str]  # columns after step and wall_time, sorted
    duplicates_dropped: int = 0
    event_files: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problems: list[dict[str, Any]] = field(default_factory=list)  # corrupt event files (tolerate_corrupt)
    problems_path: Path | None = None

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [p for p in (self.csv_path, self.summary_path, self.plot_path, self.problems_path) if p is not None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (paths as strings), e.g. for an XCom."""
        return {
            "csv_path": str(self.csv_path),
            "summary_path": str(self.summary_path),
            "plot_path": str(self.plot_path) if self.plot_path else None,
            "files": self.files,
            "scalars": self.scalars,
            "steps": self.steps,
            "tags": list(self.tags),
            "duplicates_dropped": self.duplicates_dropped,
            "event_files": [str(p) for p in self.event_files],
            "warnings": list(self.warnings),
            "seconds": self.seconds,
            "problems": list(self.problems),
        }


def _write_atomically(path: Path, write: Callable[[Path], Any]) -> Any:
    """Write through a temporary name and rename, so a killed task never leaves a half-written output.

    ``write`` may decide to write nothing (the plot without its tags); then nothing is renamed.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        result = write(tmp)
        if tmp.exists():
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return result


def _write_problems(run: RunScalars, event_root: Path, out_dir: Path) -> Path | None:
    """Write the run's unreadable event files to ``metrics-problems.json`` (None if there are none), each named by
    its path relative to the run, as it is staged and published (``tensorboard/...``)."""
    base = event_root if event_root.is_dir() else event_root.parent
    for problem in run.problems:
        path = Path(str(problem["file"]))
        problem["file"] = path.relative_to(base).as_posix() if path.is_relative_to(base) else path.name
    if not run.problems:
        return None
    problems_path = out_dir / PROBLEMS_NAME
    doc = {"problems": run.problems, "note": "these event files could not be read whole; metrics.csv holds "
                                             "what precedes each bad record"}
    _write_atomically(problems_path, lambda p: p.write_text(json.dumps(doc, indent=2) + "\n"))
    return problems_path


def convert_run(event_root: Path, out_dir: Path, *, tolerate_corrupt: bool = False) -> ConvertResult:
    """Convert every TensorBoard event file under ``event_root`` into ``out_dir``.

    Writes ``metrics.csv`` (wide: step, wall_time, one column per tag), ``summary.json`` (per-tag
    last/min/max/count/last_step and the best mean reward) and, when the run logged
    ``Train/mean_reward`` or ``Train/mean_episode_length``, ``reward_curve.png``. Duplicate (tag, step)
    values resolve as documented in :mod:`isaaclab_pipeline.metrics.merge`: the later write wins.

    :param event_root: run directory, searched recursively for ``events.out.tfevents.*``, or one event file.
    :param out_dir: output directory, created if missing.
    :param tolerate_corrupt: a corrupt event file keeps the records before its bad one; the problem is written to
        ``metrics-problems.json`` (and the result's ``problems``) instead of raising.
    :return: paths written, counts and warnings (truncated files, skipped plot, skipped values).
    :raises FileNotFoundError: no event file under ``event_root``.
    :raises EventFileCorruptError: a record fails its CRC check (names the file and byte offset).
    """
    from isaaclab_pipeline.metrics.plot import plot_reward_curve
    from isaaclab_pipeline.metrics.summary import write_summary_json
    from isaaclab_pipeline.metrics.table import write_metrics_csv

    started = time.perf_counter()
    event_root, out_dir = Path(event_root), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = read_run(event_root, tolerate_corrupt=tolerate_corrupt)
    warnings = list(run.warnings)
    problems_path = _write_problems(run, event_root, out_dir)
    if not run.series:
        msg = f"no scalar values in {len(run.files)} event file(s) under {event_root}"
        log.warning("%s", msg)
        warnings.append(msg)

    csv_path = out_dir / CSV_NAME
    shape = _write_atomically(csv_path, lambda p: write_metrics_csv(run.series, p))
    summary_path = out_dir / SUMMARY_NAME
    _write_atomically(summary_path, lambda p: write_summary_json(run.series, p, shape.rows))

    plot_path: Path | None = out_dir / PLOT_NAME
    title = event_root.name if event_root.is_dir() else event_root.parent.name
    plotted = _write_atomically(plot_path, lambda p: plot_reward_curve(run.series, p, title=title))
    if not plotted:
        plot_path = None
        msg = "reward_curve.png not written: the run has neither Train/mean_reward nor Train/mean_episode_length"
        log.warning("%s", msg)
        warnings.append(msg)

    return ConvertResult(
        csv_path=csv_path,
        summary_path=summary_path,
        plot_path=plot_path,
        files=len(run.files),
        scalars=run.scalars,
        steps=shape.rows,
        tags=run.tags,
        duplicates_dropped=run.duplicates_dropped,
        event_files=run.files,
        warnings=warnings,
        seconds=time.perf_counter() - started,
        problems=list(run.problems),
        problems_path=problems_path,
    )
