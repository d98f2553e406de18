"""Wide ``metrics.csv``: one row per step, one column per tag.

Columns: ``step``, ``wall_time``, then the tags sorted by name. Rows: the union of all tags' steps, in
ascending order; a cell is empty where a tag has no value at that step; ``wall_time`` is the greatest
wall_time among the row's values. Numbers are written as ``repr(float)`` writes them (Python's shortest
round-trip form), so reading the CSV back gives the exact float64 values (the float32 ``simple_value`` widened).

Formatting a million floats one ``repr`` at a time costs as much as reading the event file, so the cells are
formatted by msgspec's JSON encoder (a dependency of Airflow itself), one call per block of rows: it writes the
same shortest round-trip digits, ~9x faster. Its spelling matches ``repr`` for 0 and for 1e-4 <= |x| < 1e16
(``repr`` switches to an exponent outside that range, msgspec at other bounds and as ``1e16`` rather than
``1e+16``); cells outside it, NaN and infinities are few and go through ``repr``. The tests hold both spellings
equal over that range.

The file is written in blocks of rows, so memory beyond the per-tag series stays small for long runs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from isaaclab_pipeline.metrics.events import ScalarSeries

ROWS_PER_BLOCK = 8192
# |x| in [REPR_PLAIN_MIN, REPR_PLAIN_MAX) (or x == 0): repr writes no exponent, and msgspec the same string
REPR_PLAIN_MIN = 1e-4
REPR_PLAIN_MAX = 1e16


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
    parts = list(series.values())
    first = parts[0].steps
    if all(np.array_equal(s.steps, first) for s in parts[1:]):  # every tag at every step: no sort needed
        return first
    return np.unique(np.concatenate([s.steps for s in parts]))


def encoder_matches_repr(grid: np.ndarray) -> np.ndarray:
    """Mask of the cells whose msgspec spelling is exactly ``repr``'s (finite, no exponent in either).

    :param grid: float64 cells.
    """
    import numpy as np

    magnitude = np.abs(grid)
    return ((magnitude >= REPR_PLAIN_MIN) & (magnitude < REPR_PLAIN_MAX)) | (grid == 0)


def _block_grid(series: Mapping[str, ScalarSeries], tags: list[str], cursors: dict[str, int],
                block: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, int]]]:
    """One block's cells: column 0 the row's wall_time (the latest of its values'), column j + 1 the j-th tag's
    value; and, per sparse tag, the rows without a value. ``cursors`` (each tag's next index) move past the block.
    """
    import numpy as np

    m = len(block)
    grid = np.empty((m, len(tags) + 1))
    grid[:, 0] = -np.inf
    row_wall = grid[:, 0]
    missing: list[tuple[np.ndarray, int]] = []  # (rows without a value, column) per sparse tag
    for j, tag in enumerate(tags, start=1):
        s = series[tag]
        a = cursors[tag]
        b = a + int(np.searchsorted(s.steps[a:], block[-1], side="right"))
        cursors[tag] = b
        if b - a == m:  # the tag has a value at every step of the block
            grid[:, j] = s.values[a:b]
            np.maximum(row_wall, s.wall_times[a:b], out=row_wall)
            continue
        has = np.zeros(m, dtype=bool)
        if b > a:
            pos = np.searchsorted(block, s.steps[a:b])
            grid[pos, j] = s.values[a:b]
            has[pos] = True
            row_wall[pos] = np.maximum(row_wall[pos], s.wall_times[a:b])
        grid[~has, j] = 0.0  # replaced by an empty cell below
        missing.append((np.flatnonzero(~has), j))
    return grid, missing


def _block_rows(grid: np.ndarray, missing: list[tuple[np.ndarray, int]], block: np.ndarray,
                encode: Callable[[Any], bytes]) -> bytes:
    """The block's CSV lines (without the last newline): its steps and cells, spelled as ``repr`` would, missing
    cells empty."""
    import msgspec
    import numpy as np

    raw = msgspec.Raw
    empty = raw(b"")
    rows = grid.tolist()
    # One encode per block; the cells whose spelling would differ from repr are patched in first.
    for r, c in zip(*np.nonzero(~encoder_matches_repr(grid)), strict=True):
        rows[r][c] = raw(repr(rows[r][c]).encode())
    for missing_rows, c in missing:
        for r in missing_rows.tolist():
            rows[r][c] = empty
    for row, step in zip(rows, block.tolist(), strict=True):
        row.insert(0, step)
    return encode(rows)[2:-2].replace(b"],[", b"\n")  # no cell holds a bracket: rows are [..],[..]


def write_metrics_csv(series: Mapping[str, ScalarSeries], path: Path | str,
                      rows_per_block: int = ROWS_PER_BLOCK) -> TableShape:
    """Write the wide table to ``path``.

    :param series: one series per tag, sorted by step with unique steps (as from
        :func:`~isaaclab_pipeline.metrics.merge.read_run`).
    :param path: the CSV file to write.
    :param rows_per_block: rows formatted per block; bounds the memory used for formatting.
    :return: row count and header.
    """
    import msgspec

    tags = sorted(series)
    header = ["step", "wall_time", *tags]
    steps = union_steps(series)
    cursors = dict.fromkeys(tags, 0)
    encode = msgspec.json.Encoder().encode
    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(header)  # the csv module quotes odd tag names
    with open(path, "wb") as f:
        f.write(head.getvalue().encode("utf-8"))
        for r0 in range(0, len(steps), rows_per_block):
            block = steps[r0 : r0 + rows_per_block]
            grid, missing = _block_grid(series, tags, cursors, block)
            f.write(_block_rows(grid, missing, block, encode))
            f.write(b"\n")
    return TableShape(rows=len(steps), columns=header)
