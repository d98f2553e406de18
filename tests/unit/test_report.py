"""The sweep's comparison report: trials.csv rows, the across-seed statistics, the status of failed trials."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from isaaclab_pipeline import report

SWEEP = "3f0c1a52-0d5e-5d1f-8a8e-1b2c3d4e5f60"


def test_confidence_interval_uses_student_t() -> None:
    got = report.interval([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert got["n"] == 3 and got["mean"] == 2.0 and got["std"] == 1.0
    assert got["ci95"] == pytest.approx([2.0 - half, 2.0 + half])
    assert report.interval([5.0])["ci95"] is None and report.interval([5.0])["mean"] == 5.0
    assert report.interval([])["mean"] is None
    assert report.t975(1) == 12.706 and report.t975(500) == 1.96


def test_status_comes_from_the_first_step_that_failed() -> None:
    ok = dict.fromkeys(report.STEPS, "success")
    assert report.status_of(ok, published=True) == ("succeeded", "")
    assert report.status_of({**ok, "wait_for_job": "failed", "convert_tensorboard_logs": "upstream_failed",
                             "publish_outputs": "upstream_failed"}, published=False) == ("failed", "wait_for_job")
    assert report.status_of(None, published=True) == ("succeeded", "")
    assert report.status_of(None, published=False) == ("failed", "")
    states = report.trial_states({"submit_job_0": "success", "wait_for_job_1": "failed", "other_0": "x"}, 2)
    assert states[0]["submit_job"] == "success" and states[1]["wait_for_job"] == "failed"


def _trial(root: Path, trial_id: str, setting: str, seed: int, rewards: list[float] | None) -> dict:
    out = root / "outputs" / SWEEP / "trials" / trial_id
    staging = root / "staging" / trial_id
    staging.mkdir(parents=True)
    if rewards is not None:
        out.mkdir(parents=True)
        lines = ["step,wall_time,Train/mean_episode_length,Train/mean_reward"]
        lines += [f"{i},{100 + 2 * i},{10 * (i + 1)},{r}" for i, r in enumerate(rewards)]
        (out / "metrics.csv").write_text("\n".join(lines) + "\n")
        (out / "manifest.json").write_text(json.dumps({"files": [{"path": "metrics.csv"}]}))
    else:
        (staging / "result.json").write_text(json.dumps({"status": "failed", "error": "CUDA out of memory"}))
    return {"job_spec": {"stagingUri": str(staging)},
            "trial": {"trialId": trial_id, "jobId": f"job-{trial_id}", "seed": seed, "settingLabel": setting,
                      "outputUri": str(out), "conf": {"trainingConfig": {"overrides": [setting]}}}}


def test_report_files_rows_and_summary(tmp_path: Path) -> None:
    a, b = "agent.algorithm.learning_rate=0.001", "agent.algorithm.learning_rate=0.0003"
    items = [_trial(tmp_path, "s0-seed1", a, 1, [0.1, 1.0, 2.0]), _trial(tmp_path, "s0-seed2", a, 2, [0.2, 3.0, 4.0]),
             _trial(tmp_path, "s1-seed1", b, 1, [0.1, 0.5, 1.0]), _trial(tmp_path, "s1-seed2", b, 2, None)]
    ok = dict.fromkeys(report.STEPS, "success")
    states = {f"{step}_{i}": ok[step] for i in range(3) for step in report.STEPS}
    states.update({"submit_job_3": "success", "wait_for_job_3": "failed", "convert_tensorboard_logs_3":
                   "upstream_failed", "publish_outputs_3": "upstream_failed"})
    conf = {"outputS3Path": str(tmp_path / "outputs"), "trainingConfig": {"task": "T", "mode": "train"},
            "sweep": {"seeds": [1, 2]}}
    result = report.write_report(conf, SWEEP, items, states, None, {"job-s0-seed1": "run1"})
    out = tmp_path / "outputs" / SWEEP
    assert result["files"] == ["comparison.png", "summary.json", "trials.csv"]
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["trial_id"], r["status"], r["failed_step"]) for r in rows] == [
        ("s0-seed1", "succeeded", ""), ("s0-seed2", "succeeded", ""), ("s1-seed1", "succeeded", ""),
        ("s1-seed2", "failed", "wait_for_job")]
    assert rows[0]["final_mean_reward"] == "2.0" and rows[1]["best_mean_reward"] == "4.0"
    assert rows[0]["final_episode_length"] == "30.0" and rows[0]["wall_time_s"] == "4.0"
    assert rows[0]["iterations"] == "3" and rows[0]["mlflow_run_id"] == "run1" and rows[0]["overrides"] == a
    assert rows[3]["reason"] == "CUDA out of memory"
    summary = json.loads((out / "summary.json").read_text())
    first, second = summary["settings"]
    assert first["setting"] == a and first["finalMeanReward"]["values"] == [2.0, 4.0]
    assert first["finalMeanReward"]["ci95"] == pytest.approx([3.0 - 12.706 * math.sqrt(2) / math.sqrt(2),
                                                              3.0 + 12.706])
    assert second["failed"] == ["s1-seed2"] and second["finalMeanReward"]["n"] == 1
    assert summary["best"]["setting"] == a and summary["succeeded"] == 3
    assert summary["failed"] == [{"trialId": "s1-seed2", "step": "wait_for_job", "reason": "CUDA out of memory"}]
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluation_trials_aggregate_return_length_and_success(tmp_path: Path) -> None:
    items = []
    for seed, mean in ((1, 4.0), (2, 5.0)):
        item = _trial(tmp_path, f"s0-seed{seed}", "(base)", seed, [])
        out = Path(item["trial"]["outputUri"])
        (out / "summary.json").write_text(json.dumps({"return": {"mean": mean}, "length": {"mean": 300.0},
                                                      "successRate": 0.5}))
        (out / "evaluation-config.json").write_text(json.dumps({"wallTimeS": 12.5}))
        items.append(item)
    conf = {"outputS3Path": str(tmp_path / "outputs"), "trainingConfig": {"task": "T", "mode": "evaluate"}}
    result = report.write_report(conf, SWEEP, items, None, None)
    [setting] = result["summary"]["settings"]
    assert setting["finalMeanReward"]["mean"] == 4.5 and setting["successRate"]["mean"] == 0.5
    assert setting["finalEpisodeLength"]["mean"] == 300.0


def _batch_cost(gpu_s: float, usd: float | None) -> str:
    return json.dumps({"backend": "batch", "wallSeconds": gpu_s / 4, "gpuSeconds": gpu_s, "estimatedCostUsd": usd,
                       "instanceType": "g6e.12xlarge", "capacity": "spot", "live": False})


def test_the_sweep_costs_the_sum_of_its_trials_failed_ones_included(tmp_path: Path) -> None:
    """Published trials' cost.json and a failed trial's staged one (its GPUs ran too) add up in cost.json, the
    summary and trials.csv; a trial without a price leaves the total price out rather than low."""
    items = [_trial(tmp_path, "s0-seed1", "(base)", 1, [1.0, 2.0]), _trial(tmp_path, "s0-seed2", "(base)", 2, None)]
    (Path(items[0]["trial"]["outputUri"]) / "cost.json").write_text(_batch_cost(3600.0, 1.5))
    metrics = Path(items[1]["job_spec"]["stagingUri"]) / "metrics"
    metrics.mkdir()
    (metrics / "cost.json").write_text(_batch_cost(1800.0, 0.75))
    conf = {"outputS3Path": str(tmp_path / "outputs"), "trainingConfig": {"task": "T", "mode": "train"}}
    result = report.write_report(conf, SWEEP, items, None, None)
    out = tmp_path / "outputs" / SWEEP
    assert result["files"] == ["comparison.png", "cost.json", "summary.json", "trials.csv"]
    total = json.loads((out / "cost.json").read_text())
    assert total["backend"] == "batch" and total["trials"] == 2
    assert total["gpuSeconds"] == 5400.0 and total["estimatedCostUsd"] == 2.25 and total["wallSeconds"] == 1350.0
    assert result["summary"]["cost"]["estimatedCostUsd"] == 2.25 and result["summary"]["cost"]["trials"] == 2
    with (out / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["status"], r["gpu_seconds"], r["estimated_cost_usd"]) for r in rows] == [
        ("succeeded", "3600.0", "1.5"), ("failed", "1800.0", "0.75")]

    (metrics / "cost.json").write_text(_batch_cost(1800.0, None))  # no price for that instance type
    total = report.write_report(conf, SWEEP, items, None, None)["summary"]["cost"]
    assert total["gpuSeconds"] == 5400.0 and "estimatedCostUsd" not in total


def test_a_sweep_with_no_cost_recorded_writes_no_cost_file(tmp_path: Path) -> None:
    items = [_trial(tmp_path, "s0-seed1", "(base)", 1, [1.0])]
    conf = {"outputS3Path": str(tmp_path / "outputs"), "trainingConfig": {"task": "T", "mode": "train"}}
    result = report.write_report(conf, SWEEP, items, None, None)
    assert "cost.json" not in result["files"] and result["summary"]["cost"] is None


def _timings(install: float, training: float, queue: float, attempts: int = 1) -> dict:
    """A job-result.json ``timings`` block as the runner and the wait step write it (phases summed over attempts)."""
    phases = {"queueWait": queue, "runnerStart": 0.5, "fetch": 0.25, "install": install, "kernelCacheRestore": 1.0,
              "isaacLabStart": 12.0, "training": training, "export": 2.0, "upload": 0.75, "other": 0.5}
    total = sum(v for k, v in phases.items() if k != "queueWait")
    blocks = [{k: v / attempts for k, v in phases.items()} | {"total": total / attempts, "attempt": i + 1}
              for i in range(attempts)]
    return {**phases, "total": total, "attempts": blocks}


def test_the_report_shows_each_trials_timings_and_their_sum(tmp_path: Path) -> None:
    """Published job-result.json timings, and a failed trial's staged result.json (its job ran), per trial in
    trials.csv and summary.json, summed over trials and attempts; a trial whose job left none is left out."""
    items = [_trial(tmp_path, "s0-seed1", "(base)", 1, [1.0, 2.0]), _trial(tmp_path, "s0-seed2", "(base)", 2, [1.5]),
             _trial(tmp_path, "s0-seed3", "(base)", 3, None), _trial(tmp_path, "s0-seed4", "(base)", 4, None)]
    first, second, failed = _timings(4.0, 100.0, 3.0), _timings(1.0, 50.0, 1.5, attempts=2), _timings(2.0, 8.0, 0.5)
    for item, doc in zip(items[:2], (first, second), strict=True):
        (Path(item["trial"]["outputUri"]) / "job-result.json").write_text(json.dumps({"timings": doc}))
    staged = Path(items[2]["job_spec"]["stagingUri"]) / "result.json"
    staged.write_text(json.dumps({"status": "failed", "error": "CUDA out of memory", "timings": failed}))
    conf = {"outputS3Path": str(tmp_path / "outputs"), "trainingConfig": {"task": "T", "mode": "train"}}

    result = report.write_report(conf, SWEEP, items, None, None)

    with (tmp_path / "outputs" / SWEEP / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["timing_install_s"] for r in rows] == ["4.0", "1.0", "2.0", ""]
    assert [r["timing_queue_wait_s"] for r in rows] == ["3.0", "1.5", "0.5", ""]
    assert [r["attempts"] for r in rows] == ["1", "2", "1", ""]
    assert float(rows[0]["timing_total_s"]) == first["total"] and float(rows[0]["timing_training_s"]) == 100.0
    assert set(report.TIMING_COLUMNS.values()) <= set(rows[0])
    summed = json.loads((tmp_path / "outputs" / SWEEP / "summary.json").read_text())["timings"]
    assert summed == result["summary"]["timings"]
    assert summed["jobs"] == 3 and summed["attempts"] == 4
    assert summed["training"] == 158.0 and summed["install"] == 7.0 and summed["queueWait"] == 5.0
    assert summed["total"] == pytest.approx(first["total"] + second["total"] + failed["total"])
    assert [t["trialId"] for t in summed["trials"]] == ["s0-seed1", "s0-seed2", "s0-seed3"]
    assert summed["trials"][1] == {"trialId": "s0-seed2", **{k: v for k, v in second.items() if k != "attempts"},
                                   "attempts": 2}


def test_no_timings_anywhere_gives_none(tmp_path: Path) -> None:
    items = [_trial(tmp_path, "s0-seed1", "(base)", 1, [1.0])]
    conf = {"outputS3Path": str(tmp_path / "outputs"), "trainingConfig": {"task": "T", "mode": "train"}}
    assert report.write_report(conf, SWEEP, items, None, None)["summary"]["timings"] is None
