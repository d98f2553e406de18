"""sync: checkpoints staged from a background thread while training runs, flush on SIGTERM, resume point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import boto3
import pytest
from isaaclab_runner import storage, sync
from isaaclab_runner.libraries import rsl_rl
from isaaclab_runner.sync import CheckpointSync, ResumePoint, find_resume_checkpoint, wait_until
from moto import mock_aws

MODEL = rsl_rl.CHECKPOINT_REGEX  # the library's checkpoint pattern (sync.py names none)

TASK_IMAGE = Path(__file__).resolve().parents[3] / "task_image"


def _run_dir(root: Path) -> Path:
    run = root / "logs" / "rsl_rl" / "cartpole" / "2026-11-26_10-00-00"
    run.mkdir(parents=True)
    return run


def test_new_checkpoints_are_staged_while_training_runs(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "work")
    staging = tmp_path / "staging"
    with CheckpointSync(tmp_path / "work" / "logs", str(staging), ["model_*.pt"], tmp_path / "scratch",
                        interval_s=0.05) as s:
        (run / "model_0.pt").write_bytes(b"zero")
        (run / "events.out.tfevents.1").write_bytes(b"not a checkpoint")
        assert wait_until(lambda: len(s.uploaded) == 1, 5)
        (run / "model_2.pt").write_bytes(b"two")
        assert wait_until(lambda: len(s.uploaded) == 2, 5)
        s.put_progress({"iteration": 3, "maxIterations": 6})
        assert wait_until(lambda: (staging / "progress.json").exists(), 5)
    staged = staging / "checkpoints" / "rsl_rl" / "cartpole" / "2026-11-26_10-00-00"
    assert sorted(p.name for p in staged.iterdir()) == ["model_0.pt", "model_2.pt"]
    assert (staged / "model_2.pt").read_bytes() == b"two"
    assert '"iteration": 3' in (staging / "progress.json").read_text()


def test_a_file_still_being_written_waits_for_the_next_scan(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    sent: list[str] = []
    s = CheckpointSync(tmp_path / "logs", "s3://b/staging", ["model_*.pt"], tmp_path / "scratch",
                       upload=lambda src, uri: sent.append(uri))
    (run / "model_5.pt").write_bytes(b"half")
    s._pass(final=False)
    assert sent == []  # first sight: maybe half written
    with (run / "model_5.pt").open("ab") as f:
        f.write(b" and the rest")
    s._pass(final=False)
    assert sent == []  # it grew: still being written
    s._pass(final=False)
    assert sent == ["s3://b/staging/checkpoints/rsl_rl/cartpole/2026-11-26_10-00-00/model_5.pt"]
    s._pass(final=False)
    assert len(sent) == 1  # staged once


def test_staged_lists_only_checkpoints_unchanged_since_their_upload(tmp_path: Path) -> None:
    """What the runner's final upload leaves out: a checkpoint rewritten or never staged is sent again."""
    run = _run_dir(tmp_path)
    fail = {"model_2.pt"}

    def upload(src: Path, uri: str) -> None:
        if src.name in fail:
            raise OSError("store hiccup")

    s = CheckpointSync(tmp_path / "logs", "s3://b/st", ["model_*.pt"], tmp_path / "scratch", upload=upload)
    for name in ("model_0.pt", "model_1.pt", "model_2.pt"):
        (run / name).write_bytes(name.encode())
    s.flush()
    (run / "model_1.pt").write_bytes(b"rewritten after its upload")
    os.utime(run / "model_1.pt", ns=(1, 1))  # a new signature even within the clock's resolution
    assert s.staged() == {run / "model_0.pt": "s3://b/st/checkpoints/rsl_rl/cartpole/2026-11-26_10-00-00/model_0.pt"}
    assert s.errors == 1

    final = tmp_path / "final"
    assert storage.upload_tree(run, str(final), exclude=s.staged()) == 2
    assert sorted(p.name for p in final.iterdir()) == ["model_1.pt", "model_2.pt"]
    assert (final / "model_1.pt").read_bytes() == b"rewritten after its upload"


def test_a_slow_store_does_not_block_the_training_thread(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    started = threading.Event()

    def slow_upload(src: Path, uri: str) -> None:
        started.set()
        time.sleep(1.0)

    with CheckpointSync(tmp_path / "logs", str(tmp_path / "st"), ["model_*.pt"], tmp_path / "scratch",
                        interval_s=0.01, upload=slow_upload) as s:
        (run / "model_0.pt").write_bytes(b"x")
        assert started.wait(5)  # an upload is in flight now
        t0 = time.perf_counter()
        for i in range(1000):
            s.put_progress({"iteration": i})
        assert time.perf_counter() - t0 < 0.1


def test_failed_uploads_are_retried(tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    calls: list[str] = []

    def flaky(src: Path, uri: str) -> None:
        calls.append(uri)
        if len(calls) == 1:
            raise OSError("connection reset")

    s = CheckpointSync(tmp_path / "logs", "s3://b/st", ["model_*.pt"], tmp_path / "scratch", upload=flaky)
    (run / "model_1.pt").write_bytes(b"x")
    assert s.flush() and s.errors == 1 and s.uploaded == []
    assert s.flush() and len(s.uploaded) == 1 and len(calls) == 2


def test_sigterm_flushes_what_was_saved(tmp_path: Path) -> None:
    """A runner-like process: saves a checkpoint every 50 ms; SIGTERM must stage all of them, the last too."""
    staging = tmp_path / "staging"
    script = textwrap.dedent(f"""
        import signal, sys, time
        from pathlib import Path
        from isaaclab_runner.sync import CheckpointSync
        run = Path({str(tmp_path)!r}) / "logs" / "rsl_rl" / "exp" / "ts"
        run.mkdir(parents=True)
        s = CheckpointSync(run.parents[2], {str(staging)!r}, ["model_*.pt"], run.parents[3] / "scratch",
                           interval_s=10).start()   # the thread alone would stage almost nothing
        def on_term(signum, frame):
            s.stop()
            print("flushed", len(s.uploaded), flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, on_term)
        for it in range(0, 10000):
            (run / f"model_{{it}}.pt").write_bytes(b"w" * 1000)
            print("saved", it, flush=True)
            time.sleep(0.05)
    """)
    env = {**os.environ, "PYTHONPATH": str(TASK_IMAGE)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True)
    saved = []
    for line in proc.stdout:
        saved.append(line)
        if len(saved) == 8:
            proc.send_signal(signal.SIGTERM)
            break
    rest = proc.stdout.read()
    assert proc.wait(10) == 143
    n_saved = sum(1 for line in saved + rest.splitlines() if line.startswith("saved"))
    staged = sorted(p.name for p in (staging / "checkpoints" / "rsl_rl" / "exp" / "ts").iterdir())
    assert f"flushed {n_saved}" in rest and len(staged) == n_saved >= 8
    assert find_resume_checkpoint(str(staging), 100, MODEL).iteration == n_saved - 1


def test_resume_point_is_the_highest_iteration_in_sync_or_run(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    assert find_resume_checkpoint(str(staging), 150, MODEL) is None
    for rel in ("checkpoints/rsl_rl/e/t1/model_50.pt", "checkpoints/rsl_rl/e/t1/model_100.pt",
                "checkpoints/rsl_rl/e/t1/model_999.txt", "run/model_0.pt", "run/params/agent.yaml"):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        (staging / rel).write_bytes(b"x")
    point = find_resume_checkpoint(str(staging), 150, MODEL)
    assert point == ResumePoint(str(staging / "checkpoints/rsl_rl/e/t1/model_100.pt"), 100, 150)
    assert (point.remaining, point.complete) == (50, False)
    (staging / "run" / "model_149.pt").write_bytes(b"x")
    done = find_resume_checkpoint("file://" + str(staging), 150, MODEL)
    assert done.uri == f"file://{staging}/run/model_149.pt" and done.complete and done.remaining == 0
    local = sync.fetch_checkpoint(point, tmp_path / "resume")
    assert local == tmp_path / "resume" / "model_100.pt" and local.read_bytes() == b"x"


def test_skrl_checkpoints_with_their_own_pattern(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints" / "skrl" / "x" / "checkpoints"
    ckpt.mkdir(parents=True)
    for name in ("agent_1000.pt", "agent_16000.pt", "best_agent.pt"):
        (ckpt / name).write_bytes(b"x")
    point = find_resume_checkpoint(str(tmp_path), 10**6, pattern=r"^agent_(\d+)\.pt$")
    assert point.iteration == 16000


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        storage._s3.cache_clear()
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="stage")
        yield client
    storage._s3.cache_clear()


def test_sync_and_resume_through_s3(s3, tmp_path: Path) -> None:
    run = _run_dir(tmp_path)
    (run / "model_0.pt").write_bytes(b"a")
    (run / "model_25.pt").write_bytes(b"b")
    s = CheckpointSync(tmp_path / "logs", "s3://stage/jobs/j1", ["model_*.pt"], tmp_path / "scratch")
    s.put_progress({"iteration": 26})
    assert s.flush()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="stage")["Contents"])
    assert keys == ["jobs/j1/checkpoints/rsl_rl/cartpole/2026-11-26_10-00-00/model_0.pt",
                    "jobs/j1/checkpoints/rsl_rl/cartpole/2026-11-26_10-00-00/model_25.pt", "jobs/j1/progress.json"]
    s3.put_object(Bucket="stage", Key="jobs/j10/checkpoints/model_90.pt", Body=b"other job")
    point = find_resume_checkpoint("s3://stage/jobs/j1", 100, MODEL)
    assert (point.iteration, point.remaining) == (25, 75)
    assert sync.fetch_checkpoint(point, tmp_path / "dl").read_bytes() == b"b"
