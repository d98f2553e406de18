"""Publish: the output layout, secrets left out, manifest last and matching, re-runs identical."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from isaaclab_pipeline.publish import output_name, plan_layout, publish_outputs, redact


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
    ("run/videos/play/rl-video-step-0.mp4", "videos/play-rl-video-step-0.mp4"),
    ("run/videos/evaluate/clip_0000.mp4", "videos/evaluate-clip_0000.mp4"),
    ("run/videos/clip.mp4", "videos/clip.mp4"),
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
    assert result == {"outputUri": f"file://{out}/job-1", "files": 8, "refusedKeys": 0}
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
    root = out / "job-2" / "checkpoints"
    ckpts = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    # the newest attempt wins a name; the older model_50.pt stays, under the attempt that wrote it
    assert ckpts == {"model_0.pt": b"a1-0", "model_50.pt": b"a2-50", "model_149.pt": b"a2-149",
                     "attempt-1/model_50.pt": b"a1-50"}
    manifest = json.loads((out / "job-2" / "manifest.json").read_text())
    assert "checkpoints/attempt-1/model_50.pt" in {e["path"] for e in manifest["files"]}
    assert [(a["attempt"], a["runFolder"]) for a in manifest["attempts"]] == [(1, "rsl_rl/exp/attempt1"), (2, "run")]


def _write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def test_local_sigterm_then_resume_layout(tmp_path: Path) -> None:
    """What a SIGTERM'd local attempt 1 and a resuming attempt 2 stage: both synced their own model_50.pt (two run
    folders), attempt 2's result.json names its run folder. Publishing used to fail: "two staged files map to
    checkpoints/model_50.pt"."""
    staging, out = tmp_path / "staging", tmp_path / "out"
    sync = "checkpoints/rsl_rl/cartpole"
    _write(staging, {
        f"{sync}/2026-11-26_10-00-00/model_0.pt": b"a1-0", f"{sync}/2026-11-26_10-00-00/model_50.pt": b"a1-50",
        f"{sync}/2026-11-26_10-05-00/model_50.pt": b"a2-50", f"{sync}/2026-11-26_10-05-00/model_149.pt": b"a2-149",
        "run/events.out.tfevents.1.h.1.0": b"e1", "run/events.out.tfevents.2.h.2.0": b"e2",
        "result.json": json.dumps({"runDir": "2026-11-26_10-05-00", "status": "succeeded"}).encode(),
    })
    publish_outputs(str(staging), str(out), {"trainingConfig": {"task": "T"}}, "job-3")
    root = out / "job-3"
    assert (root / "checkpoints/model_50.pt").read_bytes() == b"a2-50"
    assert (root / "checkpoints/attempt-1/model_50.pt").read_bytes() == b"a1-50"
    assert (root / "checkpoints/model_0.pt").read_bytes() == b"a1-0"
    assert (root / "checkpoints/model_149.pt").read_bytes() == b"a2-149"
    assert sorted(p.name for p in (root / "tensorboard").iterdir()) == ["events.out.tfevents.1.h.1.0",
                                                                       "events.out.tfevents.2.h.2.0"]


def test_final_run_folder_is_the_newest_attempt_whatever_its_name(tmp_path: Path) -> None:
    """result.json's runDir decides which attempt is the last, even if an older folder sorts after it."""
    layout = plan_layout({"checkpoints/l/e/zzz-old/model_5.pt": 1.0, "checkpoints/l/e/aaa-new/model_5.pt": 2.0},
                         run_dir="aaa-new")
    assert layout.files == {"checkpoints/model_5.pt": "checkpoints/l/e/aaa-new/model_5.pt",
                            "checkpoints/attempt-1/model_5.pt": "checkpoints/l/e/zzz-old/model_5.pt"}


def test_three_attempts_each_keep_their_copy() -> None:
    staged = {f"checkpoints/rsl_rl/x/2026-01-0{i}/model_10.pt": float(i) for i in (1, 2, 3)}
    layout = plan_layout(staged)
    assert layout.files == {"checkpoints/model_10.pt": "checkpoints/rsl_rl/x/2026-01-03/model_10.pt",
                            "checkpoints/attempt-2/model_10.pt": "checkpoints/rsl_rl/x/2026-01-02/model_10.pt",
                            "checkpoints/attempt-1/model_10.pt": "checkpoints/rsl_rl/x/2026-01-01/model_10.pt"}
    assert [a["attempt"] for a in layout.attempts] == [1, 2, 3]


def test_run_copy_wins_over_the_synced_copy_of_the_same_attempt() -> None:
    layout = plan_layout({"checkpoints/rsl_rl/x/ts/model_4.pt": 1.0, "run/model_4.pt": 2.0}, run_dir="ts")
    assert layout.files == {"checkpoints/model_4.pt": "run/model_4.pt"}
    assert layout.superseded == [{"key": "checkpoints/rsl_rl/x/ts/model_4.pt", "by": "run/model_4.pt"}]


def test_a_taken_name_is_published_under_staging_not_dropped() -> None:
    layout = plan_layout({"run/params/env.yaml": 1.0, "run/params/env.yml": 1.0, "run/nn/a.pth": 1.0,
                          "run/other/a.pth": 1.0})
    assert layout.files["env-params.txt"] == "run/params/env.yaml"
    assert layout.files["staging/run/params/env.yml"] == "run/params/env.yml"
    assert sorted(v for k, v in layout.files.items() if k.endswith(".pth")) == ["run/nn/a.pth", "run/other/a.pth"]


def test_symlinks_in_local_staging_are_not_followed(tmp_path: Path) -> None:
    staging, out = tmp_path / "staging", tmp_path / "out"
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("worker credentials")
    _write(staging, {"run/model_1.pt": b"m"})
    (staging / "run" / "params").mkdir()
    (staging / "run" / "params" / "env.yaml").symlink_to(secret)
    (staging / "run" / "home").symlink_to(tmp_path, target_is_directory=True)
    publish_outputs(str(staging), str(out), {"trainingConfig": {"task": "T"}}, "job-4")
    published = [p for p in (out / "job-4").rglob("*") if p.is_file()]
    assert published and all("worker credentials" not in p.read_text(errors="ignore") for p in published)
    assert not (out / "job-4" / "env-params.txt").exists() and not (out / "job-4" / "run" / "home").exists()


def test_hostile_s3_keys_are_refused_and_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything inside the job can stage a key such as run/../../../x; it never leaves the scratch folder."""
    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws",
                                                               "extra": {"region_name": "us-east-1"}}))
    hostile = ["run/../../../../tmp/escaped.txt", "run/./x.txt", "run//y.txt", "/abs.txt", "run/a\\..\\b",
               "run/nl\n.txt"]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="stage")
        s3.create_bucket(Bucket="out")
        for key in ["run/model_1.pt", *hostile]:
            s3.put_object(Bucket="stage", Key=f"job/{key}", Body=b"x")
        result = publish_outputs("s3://stage/job", "s3://out/pub", {"trainingConfig": {"task": "T"}}, "job-5")
        assert result["refusedKeys"] == len(hostile)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="out")["Contents"])
        manifest = json.loads(s3.get_object(Bucket="out", Key="pub/job-5/manifest.json")["Body"].read())
    assert keys == ["pub/job-5/checkpoints/model_1.pt", "pub/job-5/manifest.json", "pub/job-5/training-config.json"]
    assert sorted(r["key"] for r in manifest["refusedKeys"]) == sorted(hostile)
    assert not Path("/tmp/escaped.txt").exists()


@pytest.mark.parametrize("key", ["a/../b", "../b", "/a", "a//b", "a/./b", ".", "", "a\\b", "a\x00b", "a\nb"])
def test_check_key_refuses(key: str) -> None:
    from isaaclab_pipeline.storage import UnsafeKeyError, check_key

    with pytest.raises(UnsafeKeyError):
        check_key(key)


def test_safe_target_refuses_a_symlink_on_the_way(tmp_path: Path) -> None:
    from isaaclab_pipeline.storage import UnsafeKeyError, safe_target

    (tmp_path / "scratch").mkdir()
    (tmp_path / "scratch" / "link").symlink_to(tmp_path, target_is_directory=True)
    assert safe_target(tmp_path / "scratch", "a/b.txt") == tmp_path / "scratch" / "a" / "b.txt"
    with pytest.raises(UnsafeKeyError, match="resolves outside"):
        safe_target(tmp_path / "scratch", "link/x.txt")


def test_a_failed_publish_leaves_no_file_without_a_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from isaaclab_pipeline import storage

    staging, out = tmp_path / "staging", tmp_path / "out"
    _stage(staging)
    real_upload, calls = storage.LocalStorage.upload, []

    def flaky(self, src: Path, uri: str) -> None:
        calls.append(uri)
        if len(calls) == 4:
            raise OSError("disk full")
        real_upload(self, src, uri)

    monkeypatch.setattr(storage.LocalStorage, "upload", flaky)
    with pytest.raises(OSError, match="disk full"):
        publish_outputs(str(staging), str(out), {"trainingConfig": {"task": "T"}}, "job-6")
    assert [p for p in (out / "job-6").rglob("*") if p.is_file()] == []
    monkeypatch.setattr(storage.LocalStorage, "upload", real_upload)
    publish_outputs(str(staging), str(out), {"trainingConfig": {"task": "T"}}, "job-6")  # the retry
    assert (out / "job-6" / "manifest.json").is_file()


def test_the_exported_policy_is_published_under_exported_not_as_a_checkpoint() -> None:
    layout = plan_layout({"run/model_4.pt": 1.0, "run/exported/policy.pt": 1.0, "run/exported/policy.onnx": 1.0},
                         run_dir="ts")
    assert layout.files["exported/policy.pt"] == "run/exported/policy.pt"
    assert layout.files["exported/policy.onnx"] == "run/exported/policy.onnx"
    assert layout.files["checkpoints/model_4.pt"] == "run/model_4.pt"
    assert "checkpoints/policy.pt" not in layout.files
