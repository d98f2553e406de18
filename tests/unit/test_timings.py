"""The Airflow side of the timings: the queue wait per attempt from a Batch DescribeJobs entry and from a local job
folder, added to the runner's blocks; a run's sum for summary.json; the log line."""

from __future__ import annotations

from pathlib import Path

from isaaclab_pipeline import timings


def _runner_timings() -> dict:
    a1 = {"attempt": 1, "startedAt": 1000.0, "finishedAt": 1100.0, "install": 5.0, "training": 80.0, "total": 100.0}
    a2 = {"attempt": 2, "startedAt": 1160.0, "finishedAt": 1200.0, "install": 4.0, "training": 30.0, "total": 40.0}
    return {"install": 9.0, "training": 110.0, "total": 140.0, "attempts": [a1, a2]}


def test_batch_queue_wait_per_attempt() -> None:
    # createdAt → attempt 1 started (30 s); attempt 1 stopped → attempt 2 started (45 s: a spot reclaim's requeue)
    job = {"createdAt": 970_000, "attempts": [{"startedAt": 1_000_000, "stoppedAt": 1_100_000}],
           "startedAt": 1_145_000, "stoppedAt": None}
    handle = {"backend": "batch", "externalId": "abc", "details": {}}
    waits = timings.queue_waits(handle, _runner_timings()["attempts"], describe=lambda _: job)
    assert waits == [30.0, 45.0]
    done = timings.with_queue_waits(_runner_timings(), waits)
    assert done["queueWait"] == 75.0 and [a["queueWait"] for a in done["attempts"]] == [30.0, 45.0]
    assert done["total"] == 140.0  # the job's own time; the queue is beside it
    line = timings.format_line(done)
    assert line.startswith("Timings: queue 75.0s | install 9.0s | training 110.0s | total 140.0s")
    assert line.endswith("(2 attempts)")


def test_local_queue_wait_from_the_job_folder(tmp_path: Path) -> None:
    import os

    (tmp_path / "spec.json").write_text("{}")
    os.utime(tmp_path / "spec.json", (990.0, 990.0))
    waits = timings.queue_waits({"backend": "local", "externalId": str(tmp_path)}, _runner_timings()["attempts"])
    assert waits == [10.0, 60.0]


def test_run_timings_sum_a_sweeps_jobs() -> None:
    one = timings.with_queue_waits(_runner_timings(), [30.0, 45.0])
    run = timings.run_timings([one, one])
    assert (run["total"], run["queueWait"], run["attempts"], run["jobs"]) == (280.0, 150.0, 4, 2)
