"""convert_run end to end: merging files, metrics.csv, summary.json, reward_curve.png, cheap import."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from isaaclab_pipeline.metrics import ConvertResult, convert_run, find_event_files, read_run
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[3]
T0 = 1_700_000_000.0


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_several_files_later_write_wins(tmp_path: Path, tb) -> None:
    run = tmp_path / "run"
    # First attempt: steps 0-9, crashes; the restart resumes at step 6 with later wall times.
    tb.write_event_file(run, [tb.simple_event("r", s, 100.0 + s, T0 + s) for s in range(10)])
    # rank folder, written later: overlaps 6-12
    tb.write_event_file(run / "rank_0", [tb.simple_event("r", s, 200.0 + s, T0 + 100 + s) for s in range(6, 13)])

    result = read_run(run)

    series = result.series["r"]
    assert len(result.files) == 2
    assert series.steps.tolist() == list(range(13))
    assert series.values.tolist() == [100.0 + s for s in range(6)] + [200.0 + s for s in range(6, 13)]
    assert result.duplicates_dropped == 4
    assert result.scalars_read == 17 and result.scalars == 13


def test_greater_wall_time_wins_even_from_an_earlier_file(tmp_path: Path, tb) -> None:
    run = tmp_path / "run"
    tb.write_event_file(run, [tb.simple_event("r", 1, 1.0, T0 + 50)])
    tb.write_event_file(run, [tb.simple_event("r", 1, 2.0, T0 + 10)])  # later file, older value

    assert read_run(run).series["r"].values.tolist() == [1.0]


def test_wall_time_ties_go_to_the_later_file_then_the_later_record(tmp_path: Path, tb) -> None:
    run = tmp_path / "run"
    tb.write_event_file(run, [tb.simple_event("r", 1, 1.0, T0), tb.simple_event("r", 2, 1.0, T0)])
    tb.write_event_file(run, [tb.simple_event("r", 1, 2.0, T0),  # tie with file 1: file order decides
                              tb.simple_event("r", 2, 3.0, T0), tb.simple_event("r", 2, 4.0, T0)])  # same file

    series = read_run(run).series["r"]
    assert series.steps.tolist() == [1, 2]
    assert series.values.tolist() == [2.0, 4.0]


def test_find_event_files_is_recursive_and_ignores_other_files(tmp_path: Path, tb) -> None:
    a = tb.write_event_file(tmp_path / "run", [tb.simple_event("x", 1, 1.0, T0)])
    b = tb.write_event_file(tmp_path / "run" / "rank_1" / "deep", [tb.simple_event("x", 1, 1.0, T0)])
    (tmp_path / "run" / "model_100.pt").write_bytes(b"not events")
    (tmp_path / "run" / "events.out.tfevents.folder").mkdir()

    assert find_event_files(tmp_path / "run") == sorted([a, b])
    assert find_event_files(a) == [a]


def test_no_event_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
        convert_run(tmp_path, tmp_path / "out")


def _training_run(tb, run: Path) -> None:
    events = []
    for it in range(5):
        events.append(tb.simple_event("Train/mean_reward", it, [1.0, 3.5, float("nan"), 3.0, 2.0][it], T0 + it))
        events.append(tb.simple_event("Train/mean_episode_length", it, 10.0 * it, T0 + it + 0.5))
    events.append(tb.simple_event("Loss/lr, \"odd\" tag", 2, 1e-3, T0 + 9))  # one sparse tag, needs quoting
    events.append(tb.tensor_event("Perf/fps", 4, T0 + 4.25, tb.float_tensor(0.1)))
    tb.write_event_file(run, events)


def test_csv_columns_rows_and_exact_values(tmp_path: Path, tb) -> None:
    _training_run(tb, tmp_path / "run")

    result = convert_run(tmp_path / "run", tmp_path / "out")

    rows = _rows(result.csv_path)
    header, body = rows[0], rows[1:]
    tags = sorted(["Train/mean_reward", "Train/mean_episode_length", "Loss/lr, \"odd\" tag", "Perf/fps"])
    assert header == ["step", "wall_time", *tags]
    assert [r[0] for r in body] == ["0", "1", "2", "3", "4"]
    col = {name: i for i, name in enumerate(header)}
    # sparse tags: empty cells except where written
    assert [r[col["Loss/lr, \"odd\" tag"]] for r in body] == ["", "", repr(float(_f32(1e-3))), "", ""]
    assert [r[col["Perf/fps"]] for r in body] == ["", "", "", "", repr(_f32(0.1))]
    # wall_time is the greatest among the row's values
    assert float(body[2][col["wall_time"]]) == T0 + 9
    assert float(body[4][col["wall_time"]]) == T0 + 4.5
    assert body[2][col["Train/mean_reward"]] == "nan"
    # lossless: every cell reads back to exactly what TensorBoard's own reader returns
    acc = EventAccumulator(str(result.event_files[0]), size_guidance={"scalars": 0})
    acc.Reload()
    events = acc.Scalars("Train/mean_episode_length")
    assert events
    for event in events:
        assert float(body[event.step][col["Train/mean_episode_length"]]) == event.value
    assert result.steps == 5 and result.tags == tags and result.scalars == 12 and result.files == 1


def _reference_csv(series: dict, tags: list[str]) -> str:
    """metrics.csv as the per-cell ``repr`` writer before msgspec produced it (the format's definition)."""
    cells: dict[int, dict[str, float]] = {}
    walls: dict[int, float] = {}
    for tag in tags:
        s = series[tag]
        for step, wall, value in zip(s.steps.tolist(), s.wall_times.tolist(), s.values.tolist(), strict=True):
            cells.setdefault(step, {})[tag] = value
            walls[step] = max(walls.get(step, -math.inf), wall)
    lines = [",".join(["step", "wall_time", *tags])]
    for step in sorted(cells):
        lines.append(",".join([str(step), repr(walls[step]),
                               *(repr(cells[step][t]) if t in cells[step] else "" for t in tags)]))
    return "\n".join(lines) + "\n"


def test_csv_cells_spell_repr_in_every_range(tmp_path: Path) -> None:
    """Every cell is repr(float) byte for byte: plain, exponent, subnormal, signed zero, NaN, infinities, sparse."""
    import numpy as np
    from isaaclab_pipeline.metrics import ScalarSeries
    from isaaclab_pipeline.metrics.table import write_metrics_csv

    rng = np.random.default_rng(7)
    edges = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, 1e-5, 2.5e-7, 1e22]
    for bound in (1e-4, 1e16, 1e15):
        edges += [float(np.nextafter(bound, -math.inf)), bound, float(np.nextafter(bound, math.inf)), -bound]
    n = 400
    widened = rng.normal(size=n).astype(np.float32).astype(np.float64)  # simple_value is a float32
    values = np.concatenate([np.array(edges), rng.integers(0, 2**63, n, dtype=np.int64).view(np.float64),
                             widened * 10.0 ** rng.integers(-8, 20, n)])
    steps = np.arange(len(values), dtype=np.int64)
    series = {
        "dense": ScalarSeries(steps, T0 + steps * 0.5, values),
        "reversed": ScalarSeries(steps, T0 + steps * 0.25, values[::-1].copy()),
        "sparse": ScalarSeries(steps[::3], T0 + steps[::3] + 0.125, rng.normal(size=len(steps[::3])) * 1e-6),
    }
    shape = write_metrics_csv(series, tmp_path / "metrics.csv", rows_per_block=37)  # several blocks, a short last one
    assert shape.rows == len(steps)
    assert (tmp_path / "metrics.csv").read_text() == _reference_csv(series, sorted(series))


def _f32(x: float) -> float:
    import struct

    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_summary_json_values(tmp_path: Path, tb) -> None:
    _training_run(tb, tmp_path / "run")

    result = convert_run(tmp_path / "run", tmp_path / "out")

    doc = json.loads(result.summary_path.read_text())
    reward = doc["tags"]["Train/mean_reward"]
    assert reward == {"last": 2.0, "min": 1.0, "max": 3.5, "count": 5, "last_step": 4}  # NaN ignored
    assert doc["tags"]["Train/mean_episode_length"]["max"] == 40.0
    assert doc["tags"]["Perf/fps"] == {"last": _f32(0.1), "min": _f32(0.1), "max": _f32(0.1), "count": 1,
                                       "last_step": 4}
    assert doc["best_mean_reward"] == {"value": 3.5, "step": 1}
    assert doc["steps"] == 5 and doc["scalars"] == 12


def test_summary_without_mean_reward_and_non_finite_last(tmp_path: Path, tb) -> None:
    tb.write_event_file(tmp_path / "run", [tb.simple_event("x", 1, 1.0, T0), tb.simple_event("x", 2, math.inf, T0)])

    result = convert_run(tmp_path / "run", tmp_path / "out")

    doc = json.loads(result.summary_path.read_text())  # strict JSON: no NaN/Infinity tokens
    assert "Infinity" not in result.summary_path.read_text()
    assert doc["best_mean_reward"] is None
    assert doc["tags"]["x"] == {"last": None, "min": 1.0, "max": 1.0, "count": 2, "last_step": 2}


def test_plot_is_a_png(tmp_path: Path, tb) -> None:
    _training_run(tb, tmp_path / "run")

    result = convert_run(tmp_path / "run", tmp_path / "out")

    assert result.plot_path == tmp_path / "out" / "reward_curve.png"
    data = result.plot_path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.csv", "reward_curve.png",
                                                                      "summary.json"]  # no temp files left
    assert result.paths == [result.csv_path, result.summary_path, result.plot_path]
    assert not result.warnings


def test_plot_skipped_without_its_tags(tmp_path: Path, tb) -> None:
    tb.write_event_file(tmp_path / "run", [tb.simple_event("Loss/x", 1, 1.0, T0)])

    result = convert_run(tmp_path / "run", tmp_path / "out")

    assert result.plot_path is None
    assert not (tmp_path / "out" / "reward_curve.png").exists()
    assert any("reward_curve.png not written" in w for w in result.warnings)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.csv", "summary.json"]


def test_truncated_file_reported_in_result(tmp_path: Path, tb) -> None:
    path = tb.write_event_file(tmp_path / "run", [tb.simple_event("x", s, 1.0, T0) for s in range(3)])
    path.write_bytes(path.read_bytes()[:-3])

    result = convert_run(tmp_path / "run", tmp_path / "out")

    assert result.steps == 2
    assert any("truncated" in w for w in result.warnings)


def test_result_is_json_serialisable(tmp_path: Path, tb) -> None:
    _training_run(tb, tmp_path / "run")
    result = convert_run(tmp_path / "run", tmp_path / "out")
    assert isinstance(result, ConvertResult)
    doc = json.loads(json.dumps(result.to_dict()))
    assert doc["csv_path"] == str(result.csv_path) and doc["files"] == 1 and doc["steps"] == 5


def test_import_is_light() -> None:
    code = (
        "import sys, isaaclab_pipeline.metrics as m; "
        "assert callable(m.convert_run); "
        "print(sorted(k for k in ('tensorboard', 'matplotlib', 'numpy', 'google.protobuf') if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "plugins"), "PATH": "/usr/bin:/bin"}, cwd=REPO)
    assert out.stdout.strip() == "[]"
