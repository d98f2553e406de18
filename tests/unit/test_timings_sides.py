"""The runner records the timings (``isaaclab_runner/timings.py``), the Airflow side adds the queue wait and sums
them (``isaaclab_pipeline/timings.py``); each package carries the phase names and the log line's format, and they
must agree, or the wait step's line and the task log's would name the phases differently."""

from __future__ import annotations

from isaaclab_pipeline import timings as airflow_side
from isaaclab_runner import timings as runner_side


def test_both_sides_name_the_same_phases() -> None:
    assert airflow_side.LABELS == runner_side.LABELS
    assert ("queueWait", *runner_side.PHASES) == airflow_side.PHASES  # the queue wait is the Airflow side's


def test_both_sides_write_the_same_line() -> None:
    block = {"queueWait": 12.04, "runnerStart": 0.8, "fetch": 0.02, "install": 3.0, "training": 81.25, "total": 90.1,
             "attempts": [{"attempt": 1}, {"attempt": 2}]}
    line = runner_side.format_line(block)
    assert line == airflow_side.format_line(block)
    assert line == ("Timings: queue 12.0s | runner start 0.8s | install 3.0s | training 81.2s | total 90.1s "
                    "(2 attempts)")
