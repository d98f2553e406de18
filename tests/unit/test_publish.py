"""Publish: the output layout, secrets left out, manifest last and matching, re-runs identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from isaaclab_pipeline.publish import output_name, publish_outputs, redact


@pytest.mark.parametrize(("staged", "published"), [
    ("run/model_150.pt", "checkpoints/model_150.pt"),
    ("run/checkpoints/agent_100.pt", "checkpoints/agent_100.pt"),
    ("run/nn/cartpole.pth", "checkpoints/cartpole.pth"),
    ("checkpoints/rsl_rl/custom_cartpole/2026-11-26_10-00-00/model_50.pt", "checkpoints/model_50.pt"),
    ("nodes/1/runner.log", "runner-log-node1.txt"),
    ("run/events.out.tfevents.1.host.1.0", "tensorboard/events.out.tfevents.1.host.1.0"),
    ("run/rank_1/events.out.tfevents.2", "tensorboard/rank_1/events.out.tfevents.2"),
    ("run/params/env.yaml", "env-params.txt"),
    ("run/params/agent.yaml", "agent-params.txt"),
    ("run/git/main.diff", "git-main.txt"),
    ("run/exported/policy.onnx", "exported/policy.onnx"),
    ("run/videos/play/rl-video-step-0.mp4", "videos/play/rl-video-step-0.mp4"),
    ("run/run.json", "run/run.json"),
    ("runner.log", "runner-log.txt"),
    ("result.json", "job-result.json"),
    ("metrics/metrics.csv", "metrics.csv"),
    ("metrics/reward_curve.png", "reward_curve.png"),
])
def test_output_layout(staged: str, published: str) -> None:
    assert output_name(staged) == published


def test_redact_drops_secret_keys_at_any_depth() -> None:
    conf = {"TaskToken": "abc", "trainingConfig": {"task": "T", "apiPassword": "p"}, "items": [{"secret": 1}]}
    assert redact(conf) == {"trainingConfig": {"task": "T"}, "items": [{}]}


def _stage(root: Path) -> None:
    files = {
        "run/model_0.pt": b"ckpt0", "run/model_4.pt": b"ckpt4", "run/params/env.yaml": b"seed: 1\n",
        "run/events.out.tfevents.1.h.1.0": b"\x00" * 10, "runner.log": b"hello\n", "result.json": b"{}",
        "metrics/metrics.csv": b"step,wall_time\n", "progress.json": b"{}",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_publish_writes_layout_and_manifest(tmp_path: Path) -> None:
    staging, out = tmp_path / "staging", tmp_path / "out"
    _stage(staging)
    conf = {"trainingConfig": {"task": "T"}, "outputS3Path": str(out), "TaskToken": "tok-123"}
    result = publish_outputs(str(staging), f"file://{out}", conf, "job-1")
    root = out / "job-1"
    assert result == {"outputUri": f"file://{out}/job-1", "files": 8}
    published = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert published == sorted([
        "checkpoints/model_0.pt", "checkpoints/model_4.pt", "env-params.txt", "job-result.json", "manifest.json",
        "metrics.csv", "runner-log.txt", "tensorboard/events.out.tfevents.1.h.1.0", "training-config.json"])
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["jobId"] == "job-1"
    for entry in manifest["files"]:
        data = (root / entry["path"]).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert {e["path"] for e in manifest["files"]} == set(published) - {"manifest.json"}
    config = json.loads((root / "training-config.json").read_text())
    assert config["jobId"] == "job-1" and "TaskToken" not in config
    assert "tok-123" not in "".join(p.read_text(errors="ignore") for p in root.rglob("*") if p.is_file())


def test_publish_twice_gives_the_same_result(tmp_path: Path) -> None:
    staging, out = tmp_path / "staging", tmp_path / "out"
    _stage(staging)
    conf = {"trainingConfig": {"task": "T"}, "outputS3Path": str(out)}
    publish_outputs(str(staging), str(out), conf, "job-1")
    first = {p: p.read_bytes() for p in (out / "job-1").rglob("*") if p.is_file()}
    publish_outputs(str(staging), str(out), conf, "job-1")
    second = {p: p.read_bytes() for p in (out / "job-1").rglob("*") if p.is_file()}
    assert first == second


def test_synced_checkpoints_of_an_interrupted_attempt_are_published(tmp_path: Path) -> None:
    """Attempt 1 synced model_0/model_50 and died; attempt 2 resumed and uploaded model_50..model_149."""
    staging, out = tmp_path / "staging", tmp_path / "out"
    files = {
        "checkpoints/rsl_rl/exp/attempt1/model_0.pt": b"a1-0", "checkpoints/rsl_rl/exp/attempt1/model_50.pt": b"a1-50",
        "run/model_50.pt": b"a2-50", "run/model_149.pt": b"a2-149", "runner.log": b"log\n",
    }
    for rel, data in files.items():
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(data)
    publish_outputs(str(staging), str(out), {"trainingConfig": {"task": "T"}}, "job-2")
    ckpts = {p.name: p.read_bytes() for p in (out / "job-2" / "checkpoints").iterdir()}
    assert ckpts == {"model_0.pt": b"a1-0", "model_50.pt": b"a2-50", "model_149.pt": b"a2-149"}
