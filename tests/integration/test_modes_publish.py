"""Publish of an evaluation's staging folder: its summary.json on top, convert's renamed, nothing clobbered."""

from __future__ import annotations

import json
from pathlib import Path

from isaaclab_pipeline.publish import publish_outputs

JOB = "0b6d2c1e-7d7e-5b5c-9f6e-1f2a3b4c5d6e"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_evaluation_layout(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    files = {
        "run/evaluation/summary.json": '{"episodes": 6, "return": {"mean": 1.0}}',
        "run/evaluation/evaluation-config.json": '{"numEpisodes": 6}',
        "run/evaluation/episodes.csv": "episode,env,return,length,success\n",
        "run/events.out.tfevents.1.host": "e",
        "run/exported/policy.onnx": "o",
        "run/videos/evaluate/clip_0000.mp4": "v",
        "metrics/metrics.csv": "step,Eval/episode_return\n",
        "metrics/summary.json": '{"tags": {}}',
        "result.json": "{}",
    }
    for rel, text in files.items():
        _write(staging / rel, text)
    publish_outputs(str(staging), str(tmp_path / "out"), {"trainingConfig": {"mode": "evaluate"}}, JOB)
    out = tmp_path / "out" / JOB
    assert json.loads((out / "summary.json").read_text())["episodes"] == 6  # the evaluation's statistics
    assert json.loads((out / "metrics-summary.json").read_text()) == {"tags": {}}  # convert's, renamed
    for name in ("evaluation-config.json", "episodes.csv", "metrics.csv", "exported/policy.onnx",
                 "videos/evaluate-clip_0000.mp4", "tensorboard/events.out.tfevents.1.host"):
        assert (out / name).is_file(), name


def test_training_keeps_convert_summary_on_top(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    _write(staging / "metrics/summary.json", '{"tags": {"Train/mean_reward": {}}}')
    _write(staging / "run/model_2.pt", "m")
    publish_outputs(str(staging), str(tmp_path / "out"), {"trainingConfig": {"mode": "train"}}, JOB)
    out = tmp_path / "out" / JOB
    assert "Train/mean_reward" in json.loads((out / "summary.json").read_text())["tags"]
    assert not (out / "metrics-summary.json").exists() and (out / "checkpoints" / "model_2.pt").is_file()
