"""Metrics of an interrupted and resumed run: Isaac Lab's restart semantics, and event files that are damaged.

rsl_rl resumes from ``model_<it>.pt`` and logs again from iteration ``it`` into a new event file; its ``<tag>/time``
scalars use elapsed seconds as their step and start again near 0. Per tag, what the abandoned attempt logged from
the resumed file's first step on is dropped; what only it logged before that is kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from isaaclab_pipeline.metrics import convert_run, read_run
from isaaclab_pipeline.metrics.events import EventFileCorruptError
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

T0 = 1_700_000_000.0


def _event(tag: str, step: int, value: float, wall: float) -> event_pb2.Event:
    return event_pb2.Event(wall_time=wall, step=step, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]))


def _write(folder: Path, events: list[event_pb2.Event]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    before = set(folder.glob("events.out.tfevents.*"))
    writer = EventFileWriter(str(folder), max_queue_size=10_000, flush_secs=3600)
    for event in events:
        writer.add_event(event)
    writer.close()
    time.sleep(0.01)  # the next file's first event is strictly later
    (path,) = set(folder.glob("events.out.tfevents.*")) - before
    return path


def test_a_resumed_attempt_replaces_what_the_abandoned_one_logged_from_its_restart_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # attempt 1: iterations 0..13, then SIGTERM; its "/time" series is at seconds 0..26; an episode tag at 12 only
    _write(run / "attempt1", [_event("Train/mean_reward", i, 100.0 + i, T0 + i) for i in range(14)]
           + [_event("Train/mean_reward/time", 2 * i, 100.0 + i, T0 + i) for i in range(14)]
           + [_event("Episode_Reward/alive", 12, 1.0, T0 + 12)])
    # attempt 2 resumed from model_10.pt: iterations 10..29, "/time" from second 1 again
    _write(run / "attempt2", [_event("Train/mean_reward", i, 200.0 + i, T0 + 100 + i) for i in range(10, 30)]
           + [_event("Train/mean_reward/time", 1 + 2 * (i - 10), 200.0 + i, T0 + 100 + i) for i in range(10, 30)])
    result = read_run(run)
    reward = result.series["Train/mean_reward"]
    assert reward.steps.tolist() == list(range(30))  # every iteration once
    assert reward.values.tolist() == [100.0 + i for i in range(10)] + [200.0 + i for i in range(10, 30)]
    timed = result.series["Train/mean_reward/time"]
    # attempt 1's values from second 1 on belong to the abandoned run: none of them is interleaved with attempt 2's
    assert timed.values.tolist() == [100.0] + [200.0 + i for i in range(10, 30)]
    assert result.series["Episode_Reward/alive"].steps.tolist() == [12]  # logged by attempt 1 only: kept


def test_a_corrupt_file_keeps_what_precedes_the_bad_record_when_tolerated(tmp_path: Path) -> None:
    run = tmp_path / "run"
    good = _write(run / "a", [_event("r", i, float(i), T0 + i) for i in range(5)])
    bad = _write(run / "b", [_event("r", i, float(i), T0 + 10 + i) for i in range(5, 20)])
    data = bytearray(bad.read_bytes())
    data[len(data) // 2] ^= 0x01
    bad.write_bytes(bytes(data))
    with pytest.raises(EventFileCorruptError):
        read_run(run)  # the strict default
    result = convert_run(run, tmp_path / "out", tolerate_corrupt=True)
    [problem] = result.problems
    assert problem["file"] == str(bad.relative_to(run)) and problem["recordsKept"] >= 1
    steps = read_run(run, tolerate_corrupt=True).series["r"].steps.tolist()
    assert steps[:5] == [0, 1, 2, 3, 4] and 5 < len(steps) < 20  # the good file whole, the bad one up to its flaw
    assert (tmp_path / "out" / "metrics-problems.json").is_file() and good.exists()


def test_an_unreadable_file_head_is_reported_not_fatal(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _write(run / "a", [_event("r", i, float(i), T0 + i) for i in range(5)])
    (run / "b").mkdir()
    (run / "b" / "events.out.tfevents.1.h.1.0").write_bytes(b"\xff" * 64)  # garbage from byte 0
    result = convert_run(run, tmp_path / "out", tolerate_corrupt=True)
    assert result.steps == 5 and [p["recordsKept"] for p in result.problems] == [0]
