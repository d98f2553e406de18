"""TensorBoard event files → ``metrics.csv``, ``summary.json`` and ``reward_curve.png``.

Entry point: :func:`convert_run`. The pieces: :mod:`.events` (streaming, CRC-checked reader that keeps
every scalar), :mod:`.merge` (all files of a run, duplicate-step rule), :mod:`.table` (wide CSV),
:mod:`.summary` (JSON), :mod:`.plot` (PNG).

Importing this package is cheap: numpy, TensorBoard's protobufs and matplotlib are imported inside the
functions that use them, so a DAG file importing it still parses fast.
"""

from __future__ import annotations

from isaaclab_pipeline.metrics.convert import ConvertResult, convert_run
from isaaclab_pipeline.metrics.events import EventFileCorruptError, FileScalars, ScalarSeries, read_event_file
from isaaclab_pipeline.metrics.merge import RunScalars, find_event_files, read_run

__all__ = [
    "ConvertResult",
    "EventFileCorruptError",
    "FileScalars",
    "RunScalars",
    "ScalarSeries",
    "convert_run",
    "find_event_files",
    "read_event_file",
    "read_run",
]
