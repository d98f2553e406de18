"""The staging reporter: runner.log, progress.json while running, result.json last; a worker node's log apart."""

from __future__ import annotations

import json
import os
from pathlib import Path

from isaaclab_runner.reporter import StagingReporter


def test_log_progress_and_result_reach_staging(tmp_path: Path, capsys) -> None:
    staging = tmp_path / "staging"
    report = StagingReporter(str(staging), tmp_path / "work", {"jobId": "j", "state": "starting", "mode": "train"})
    report.set_state("installing")
    assert json.loads((staging / "progress.json").read_text())["state"] == "installing"
    report.say("hello")
    report.write("isaaclab line\n")
    report.progress["iteration"] = 3
    report.write_progress()  # within PROGRESS_INTERVAL_S of the last write: held back
    assert "iteration" not in json.loads((staging / "progress.json").read_text())
    report.finish({"jobId": "j", "status": "succeeded"}, succeeded=True)
    assert capsys.readouterr().out == "[runner] hello\nisaaclab line\n"
    assert (staging / "runner.log").read_text() == "[runner] hello\nisaaclab line\n"
    progress = json.loads((staging / "progress.json").read_text())
    assert (progress["state"], progress["iteration"]) == ("succeeded", 3)
    assert json.loads((staging / "result.json").read_text())["status"] == "succeeded"
    # result.json is written last: its presence says the folder is complete
    times = {name: os.stat(staging / name).st_mtime_ns for name in ("progress.json", "runner.log", "result.json")}
    assert times["result.json"] >= max(times.values())


def test_progress_goes_through_the_sync_thread_while_training(tmp_path: Path) -> None:
    class Sync:
        queued: list[dict] = []

        def put_progress(self, progress: dict) -> None:
            self.queued.append(dict(progress))

    report = StagingReporter(str(tmp_path / "staging"), tmp_path / "work", {"state": "running"})
    report.sync = Sync()  # type: ignore[assignment]
    report.write_progress()
    assert Sync.queued == [{"state": "running"}] and not (tmp_path / "staging").exists()


def test_a_worker_node_stages_only_its_log(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    report = StagingReporter(str(staging), tmp_path / "work", {"state": "starting"})
    report.uploads, report.node_rank = False, 1
    report.set_state("running")
    report.say("worker")
    report.finish({"status": "failed"}, succeeded=False)
    assert sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()) == [
        "nodes/1/runner.log"]


def test_progress_keeps_a_bounded_reward_history(tmp_path) -> None:
    """The runs view draws the whole curve from progress.json, also when opened mid-run."""
    import json

    from isaaclab_runner import reporter as reporter_mod
    from isaaclab_runner.reporter import StagingReporter

    rep = StagingReporter(str(tmp_path / "staging"), tmp_path / "work", {"jobId": "j", "state": "running"})
    limit = reporter_mod.HISTORY_POINTS
    for it in range(3 * limit):
        rep.progress.update(iteration=it, meanReward=it / 10)
        rep.write_progress(force=True)
    history = json.loads((tmp_path / "staging" / "progress.json").read_text())["history"]
    assert len(history) <= limit and history[0] == [0, 0.0] and history[-1] == [3 * limit - 1, (3 * limit - 1) / 10]
    assert [p[0] for p in history] == sorted(p[0] for p in history)
