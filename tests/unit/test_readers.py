"""The one reader per file format (``readers.py``): each library's headline tags in metrics.csv, progress.json's
points, manifest.json's paths, summary.json's headline numbers; a skrl and an rl_games sweep report their reward."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from isaaclab_pipeline import readers, report
from isaaclab_tools.cli import report as cli_report

SWEEP = "5a1d0c3e-7b2f-5e0a-9c4d-2e3f4a5b6c70"


def _skrl_csv(rewards: list[float]) -> str:
    """A skrl run's metrics.csv as the convert step writes it: skrl logs by timestep, every tag on each row."""
    header = ["step", "wall_time", "Episode / Total timesteps (max)", "Episode / Total timesteps (mean)",
              "Loss / Policy loss", "Reward / Instantaneous reward (mean)", "Reward / Total reward (max)",
              "Reward / Total reward (mean)"]
    rows = [[16 * (i + 1), 50.0 + i, 300, 100 + 10 * i, 0.01, r / 100, r + 1, r] for i, r in enumerate(rewards)]
    return "\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n"


def _rl_games_csv(rewards: list[float]) -> str:
    """An rl_games run's metrics.csv: ``*/iter`` tags by epoch, ``*/step`` tags by frame (rows of their own)."""
    header = ["step", "wall_time", "episode_lengths/iter", "episode_lengths/step", "losses/a_loss", "rewards/iter",
              "rewards/step", "shaped_rewards/iter"]
    rows = []
    for epoch, r in enumerate(rewards, start=1):
        rows.append([epoch, 10.0 + epoch, 20 * epoch, "", 0.5, r, "", r * 0.1])
    for epoch, r in enumerate(rewards, start=1):
        rows.append([4096 * epoch, 10.0 + epoch, "", 20 * epoch, "", "", r, ""])
    return "\n".join(",".join(map(str, r)) for r in [header, *rows]) + "\n"


def test_headline_tags_of_each_library() -> None:
    assert readers.reward_tag(["Loss/x", "Train/mean_reward"]) == "Train/mean_reward"
    assert readers.reward_tag(["Reward / Instantaneous reward (max)", "Reward / Total reward (mean)"]) == (
        "Reward / Total reward (mean)")
    assert readers.reward_tag(["losses/a_loss", "rewards/step", "rewards/iter"]) == "rewards/iter"
    assert readers.reward_tag(["episode/mean_reward_custom"]) == "episode/mean_reward_custom"  # no library's: fallback
    assert readers.reward_tag(["Loss/x"]) is None
    assert readers.length_tag(["Episode / Total timesteps (mean)"]) == "Episode / Total timesteps (mean)"
    assert readers.length_tag(["rewards/iter"]) is None


def test_metrics_csv_of_skrl_and_rl_games() -> None:
    skrl = readers.read_metrics_csv(_skrl_csv([1.0, 2.0, 5.0]))
    assert skrl.reward() == [(16, 1.0), (32, 2.0), (48, 5.0)]
    assert skrl.length() == [(16, 100.0), (32, 110.0), (48, 120.0)]
    assert skrl.wall_time_s() == 2.0
    games = readers.read_metrics_csv(_rl_games_csv([3.0, 4.0]))
    assert games.reward() == [(1, 3.0), (2, 4.0)]  # by epoch: the frame-indexed rows hold no rewards/iter
    assert games.length() == [(1, 20.0), (2, 40.0)]
    table = readers.read_metrics_csv("step,wall_time,rewards/iter\n0,0,1\n1,1,nan\n2,2,\nx,3,4\n3,3,inf\n")
    assert table.reward() == [(0, 1.0)]  # non-finite and empty cells, rows without a step: skipped
    assert readers.read_metrics_csv(b"").rows == [] and readers.read_metrics_csv(None).reward() == []


def test_json_documents() -> None:
    assert readers.read_json(b'{"state": "running"}') == {"state": "running"}
    assert readers.read_json(b'{"state": "runn') is None  # caught mid-write
    assert readers.read_json(b"[1]") is None and readers.read_json(None) is None
    progress = {"iteration": 5, "meanReward": 2.5, "history": [[3, 1.0], {"iteration": 4, "meanReward": 2.0},
                                                              [None, 1.0], "x"]}
    assert list(readers.progress_points(progress)) == [(3, 1.0), (4, 2.0), (5, 2.5)]
    assert list(readers.progress_points({"iteration": 1, "meanReward": float("nan")})) == []
    manifest = {"files": [{"path": "metrics.csv", "size": 3}, {"size": 1}, "x", {"path": "exported/policy.pt"}]}
    assert list(readers.manifest_files(manifest)) == ["metrics.csv", "exported/policy.pt"]
    assert readers.manifest_files(manifest)["metrics.csv"]["size"] == 3 and readers.manifest_files(None) == {}


def test_summary_headline_of_a_skrl_run() -> None:
    summary = {"tags": {"Reward / Total reward (mean)": {"last": 5.0, "last_step": 48},
                        "Episode / Total timesteps (mean)": {"last": 120.0, "last_step": 48}}}
    assert readers.headline_metrics(summary) == {"lastMeanReward": 5.0, "lastEpisodeLength": 120.0, "lastStep": 48}


def test_cli_report_names_an_rl_games_reward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"tags": {"rewards/iter": {"last": 4.0, "last_step": 2}}}))
    cli_report(str(tmp_path), started=0)
    assert "rewards/iter at the last iteration (2): 4.000" in capsys.readouterr().out.splitlines()


def _trial(root: Path, trial_id: str, setting: str, metrics_csv: str) -> dict:
    out = root / "outputs" / SWEEP / "trials" / trial_id
    out.mkdir(parents=True)
    (out / "metrics.csv").write_text(metrics_csv)
    (out / "manifest.json").write_text(json.dumps({"files": [{"path": "metrics.csv"}]}))
    return {"job_spec": {"stagingUri": str(root / "staging" / trial_id)},
            "trial": {"trialId": trial_id, "jobId": f"job-{trial_id}", "seed": 1, "settingLabel": setting,
                      "outputUri": str(out), "conf": {"trainingConfig": {"overrides": [setting]}}}}


@pytest.mark.parametrize(("library", "make_csv", "final_step"),
                         [("skrl", _skrl_csv, 48), ("rl_games", _rl_games_csv, 3)])
def test_a_sweep_of_each_library_reports_its_reward(tmp_path: Path, library: str, make_csv, final_step: int) -> None:
    items = [_trial(tmp_path, "s0-seed1", "a=1", make_csv([1.0, 2.0, 3.0])),
             _trial(tmp_path, "s1-seed1", "a=2", make_csv([1.0, 6.0, 5.0]))]
    states = {f"{step}_{i}": "success" for i in range(2) for step in report.STEPS}
    conf = {"outputS3Path": str(tmp_path / "outputs"), "sweep": {"seeds": [1]},
            "trainingConfig": {"task": "T", "mode": "train", "rlLibrary": library}}
    result = report.write_report(conf, SWEEP, items, states, None, {})
    with (tmp_path / "outputs" / SWEEP / "trials.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["final_mean_reward"], r["best_mean_reward"]) for r in rows] == [("3.0", "3.0"), ("5.0", "6.0")]
    assert rows[0]["iterations"] == str(final_step + 1) and rows[0]["final_episode_length"] != ""
    assert result["summary"]["best"]["setting"] == "a=2"
    assert result["summary"]["best"]["finalMeanReward"]["mean"] == 5.0
    assert "comparison.png" in result["files"]
