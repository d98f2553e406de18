"""Wide ``metrics.csv``: one row per step, one column per tag.

Columns: ``step``, ``wall_time``, then the tags sorted by name. Rows: the union of all tags' steps, in
ascending order; a cell is empty where a tag has no value at that step; ``wall_time`` is the greatest
wall_time among the row's values. Numbers are written with ``repr(float)`` (Python's shortest round-trip
form), so reading the CSV back gives the exact float64 values (the float32 ``simple_value`` widened).

The file is written in blocks of rows, so memory beyond the per-tag series stays small for long runs.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from isaaclab_pipeline.metrics.events import ScalarSeries

ROWS_PER_BLOCK = 8192


@dataclass(frozen=True, slots=True)
class TableShape:
    """Size of a written table."""

    rows: int
    columns: list[str]


def union_steps(series: Mapping[str, ScalarSeries]) -> np.ndarray:
    """Sorted union of all tags' steps.

    :param series: one step-sorted series per tag.
    """
    import numpy as np

    if not series:
        return np.empty(0, dtype=np.int64)
    return np.unique(np.concatenate([s.steps for s in series.values()]))


def write_metrics_csv(series: Mapping[str, ScalarSeries], path: Path | str,
                      rows_per_block: int = ROWS_PER_BLOCK) -> TableShape:
    """Write the wide table to ``path``.

    :param series: one series per tag, sorted by step with unique steps (as from
        :func:`~isaaclab_pipeline.metrics.merge.read_run`).
    :param path: the CSV file to write.
    :param rows_per_block: rows formatted per block; bounds the memory used for formatting.
    :return: row count and header.
    """
    import numpy as np

    tags = sorted(series)
    header = ["step", "wall_time", *tags]
    steps = union_steps(series)
    cursors = dict.fromkeys(tags, 0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerow(header)  # the csv module quotes odd tag names
        # Number cells never need quoting: joining repr() strings is ~1.5x faster than csv.writer.writerows,
        # and repr (the shortest string that reads back to the same float) is most of the cost anyway.
        for r0 in range(0, len(steps), rows_per_block):
            block = steps[r0 : r0 + rows_per_block]
            m = len(block)
            row_wall = np.full(m, -np.inf)
            columns: list[list[str]] = []
            for tag in tags:
                s = series[tag]
                a = cursors[tag]
                b = a + int(np.searchsorted(s.steps[a:], block[-1], side="right"))
                cursors[tag] = b
                if b - a == m:  # the tag has a value at every step of the block
                    columns.append(list(map(repr, s.values[a:b].tolist())))
                    np.maximum(row_wall, s.wall_times[a:b], out=row_wall)
                    continue
                cells = np.full(m, "", dtype=object)
                if b > a:
                    pos = np.searchsorted(block, s.steps[a:b])
                    cells[pos] = list(map(repr, s.values[a:b].tolist()))
                    row_wall[pos] = np.maximum(row_wall[pos], s.wall_times[a:b])
                columns.append(cells.tolist())
            lines = zip(map(str, block.tolist()), map(repr, row_wall.tolist()), *columns, strict=True)
            f.write("\n".join(map(",".join, lines)))
            f.write("\n")
    return TableShape(rows=len(steps), columns=header)
