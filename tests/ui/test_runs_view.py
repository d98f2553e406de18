"""The runs view's data without a server: runs as the DB holds them (records) and files as the steps leave them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from isaaclab_pipeline import form
from isaaclab_pipeline.ui import artifacts, queries, run_links, runs

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def record(run_id: str = "r1", state: str = "running", conf: dict | None = None, **kw) -> queries.RunRecord:
    return queries.RunRecord(run_id, state, NOW - timedelta(minutes=10), None if state in runs.ACTIVE else NOW,
                          NOW - timedelta(minutes=11), conf or {}, **kw)


def file_url(run_id: str, index: int, name: str) -> str:
    return f"/files/{run_id}/{index}/{name}"


def publish(root: Path, job: str, rewards: list[float], cost: dict | None = None) -> Path:
    out = root / "out" / job
    out.mkdir(parents=True)
    (out / "metrics.csv").write_text("step,wall_time,Train/mean_reward\n" + "".join(
        f"{i},{i},{r}\n" for i, r in enumerate(rewards)))
    (out / "summary.json").write_text(json.dumps({
        "tags": {"Train/mean_reward": {"last": rewards[-1], "last_step": len(rewards) - 1}},
        "best_mean_reward": {"value": max(rewards), "step": rewards.index(max(rewards))},
        "timings": {"queueWait": 42.0, "install": 5.0, "isaacLabStart": 9.0, "training": 60.0, "total": 80.0,
                    "attempts": 2, "jobs": 1},
        "gpu": {"peakMemoryMiB": 9216.0, "memoryTotalMiB": 81920.0, "meanUtilizationPct": 31.0,
                "hint": "peak 9.0 of 80 GiB at numEnvs 4096: about 32768 envs would fit"}}))
    names = ["metrics.csv", "summary.json"]
    if cost is not None:
        (out / "cost.json").write_text(json.dumps(cost))
        names.append("cost.json")
    (out / "manifest.json").write_text(json.dumps({"files": [{"path": n, "size": 1} for n in names]}))
    return out


def staged(root: Path, job: str, **progress) -> str:
    staging = root / "staging" / job
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "progress.json").write_text(json.dumps(progress))
    return str(staging)


def handle(job: str, staging: str, backend: str = "local") -> dict:
    return {"backend": backend, "jobId": job, "externalId": f"/jobs/{job}", "details": {"regionName": "eu-west-1"},
            "stagingUri": staging}


def costs(h: dict) -> dict:
    return {"backend": h["backend"], "wallSeconds": 60.0, "gpuSeconds": 60.0, "estimatedCostUsd": 0.5,
            "live": True}


def test_a_sweep_shows_each_trial_and_sums_the_cost(tmp_path: Path) -> None:
    conf = {"trainingConfig": {"mode": "train", "task": "T", "rlLibrary": "skrl", "numEnvs": 64},
            "computeConfig": {"numNodes": 1}, "sweep": {"seeds": [1, 2, 3]}}
    out = publish(tmp_path, "j0", [1.0, 2.0, 5.0, 4.0], cost={"backend": "batch", "gpuSeconds": 3600.0,
                                                                "estimatedCostUsd": 0.8, "wallSeconds": 3600.0,
                                                                "queueWaitSeconds": 300.0, "trainingSeconds": 3000.0})
    s1 = staged(tmp_path, "j1", state="training", iteration=7, maxIterations=10, meanReward=3.5)
    s2 = staged(tmp_path, "j2", state="failed", iteration=3, maxIterations=10, meanReward=-1.0)
    tis = {("validate_config", -1): ("success", None, None, 1), ("resolve_inputs", -1): ("success", None, None, 1)}
    for i, state in enumerate(("success", "deferred", "failed")):
        tis[("submit_job", i)] = ("success", None, None, 1)
        tis[("wait_for_job", i)] = (state, None, None, 1)
    specs = [{"job_spec": {"jobId": f"j{i}", "seed": i + 1, "stagingUri": "-"},
              "trial": {"trialId": f"t{i}", "settingLabel": "lr=1e-3"}} for i in range(3)]
    xcoms = {("validate_config", -1, "return_value"): {"jobId": "sweep", "conf": conf},
             ("resolve_inputs", -1, "return_value"): specs,
             ("submit_job", 0, "return_value"): handle("j0", "-", "batch"),
             ("submit_job", 1, "return_value"): handle("j1", s1, "batch"),
             ("submit_job", 2, "return_value"): handle("j2", s2, "batch"),
             ("publish_outputs", 0, "return_value"): {"outputUri": str(out), "jobId": "j0", "trialId": "t0"},
             ("wait_for_job", 0, "isaaclab_batch_job"): {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com",
                                                         "job_id": "b-0"}}
    view = runs.describe(record(tis=tis, xcoms=xcoms), artifacts.Artifacts(cost_of=costs), NOW.timestamp(), file_url)

    assert (view["mode"], view["task"], view["rlLibrary"], view["sweep"]) == ("train", "T", "skrl", True)
    assert view["steps"]["wait_for_job"] == "failed (1/3)"
    done, live, failed = view["trials"]
    assert (done["trialId"], done["seed"], done["setting"]) == ("t0", 1, "lr=1e-3")
    assert done["result"]["bestMeanReward"] == 5.0 and done["result"]["lastMeanReward"] == 4.0
    # where its time and GPU went (summary.json's timings and gpu, issue 25)
    assert (done["timings"]["queueWait"], done["timings"]["attempts"]) == (42.0, 2)
    assert done["gpu"]["hint"].startswith("peak 9.0 of 80 GiB") and live["timings"] is None
    assert done["curve"] == [[0, 1.0], [1, 2.0], [2, 5.0], [3, 4.0]]
    assert done["cost"]["estimatedCostUsd"] == 0.8  # the published cost.json
    assert (done["cost"]["queueWaitSeconds"], done["cost"]["trainingSeconds"]) == (300.0, 3000.0)  # apart
    assert [f["name"] for f in done["files"]] == ["summary.json", "metrics.csv", "cost.json", "manifest.json"]
    assert done["links"]["batchJob"] == "https://console.aws.amazon.com/batch/home?region=eu-west-1#jobs/detail/b-0"
    assert live["progress"]["iteration"] == 7 and live["curve"] == [[7, 3.5]]
    assert live["cost"]["estimatedCostUsd"] == 0.5  # a live estimate from the backend
    assert failed["steps"]["wait_for_job"] == "failed" and failed["progress"]["iteration"] == 3
    assert view["cost"] == {"backend": "batch", "trials": 3, "live": True, "wallSeconds": 3720.0, "gpuSeconds": 3720.0,
                            "estimatedCostUsd": 1.8}
    assert view["links"]["airflow"] == "/dags/isaac-lab-training/runs/r1"


def test_the_curve_of_a_running_job_grows_with_each_sample(tmp_path: Path) -> None:
    staging = staged(tmp_path, "j", iteration=1, maxIterations=5, meanReward=0.5)
    rec = record(xcoms={("submit_job", -1, "return_value"): handle("j", staging)},
                 tis={("submit_job", -1): ("success", None, None, 1),
                      ("wait_for_job", -1): ("deferred", None, None, 1)})
    cache = artifacts.Artifacts(cost_of=costs)
    assert runs.describe(rec, cache)["trials"][0]["curve"] == [[1, 0.5]]
    staged(tmp_path, "j", iteration=3, maxIterations=5, meanReward=1.5, history=[[2, 1.0], {"iteration": 0,
                                                                                           "meanReward": 0.0}])
    assert runs.describe(rec, cache)["trials"][0]["curve"] == [[0, 0.0], [1, 0.5], [2, 1.0], [3, 1.5]]


def test_before_validate_config_the_conf_as_sent_is_shown(tmp_path: Path) -> None:
    flat = form.form_submission(mode="evaluate", task="Isaac-Ant-v0", rlLibrary="rl_games")
    view = runs.describe(record(conf=flat), artifacts.Artifacts())
    assert (view["mode"], view["task"], view["rlLibrary"], view["trials"]) == ("evaluate", "Isaac-Ant-v0",
                                                                               "rl_games", [])
    bad = runs.describe(record(conf={**form.form_submission(numEnvs=8), "trainingConfig": {"numEnvs": 9}}),
                        artifacts.Artifacts())
    assert bad["problems"] and "disagrees" in bad["problems"][0]


def test_reward_curve_of_each_library() -> None:
    """The curve comes from the library's headline tag (readers.HEADLINE_TAGS; its own tests in test_readers.py)."""
    for tag in ("Train/mean_reward", "Reward / Total reward (mean)", "rewards/iter"):
        text = f"step,wall_time,Loss/x,Reward / Instantaneous reward (max),{tag}\n0,0,9,9,1\n1,1,9,9,2\n"
        assert artifacts.reward_curve_from_csv(text) == [[0, 1.0], [1, 2.0]], tag
    assert artifacts.reward_curve_from_csv("step,wall_time,Loss/x\n0,0,1\n") == []
    assert artifacts.reward_curve_from_csv("step,wall_time,rewards/iter\n0,0,1\n1,1,nan\n2,2,\n3,3,4\n") == [[0, 1.0],
                                                                                                     [3, 4.0]]
    assert len(artifacts.downsample([[i, i] for i in range(1000)])) == artifacts.CURVE_POINTS


def test_links() -> None:
    assert run_links.s3_console_link("s3://bucket/out/job", "us-east-1") == (
        "https://s3.console.aws.amazon.com/s3/buckets/bucket?prefix=out/job/&region=us-east-1")
    assert run_links.s3_console_link("/local/out") is None
    logs = run_links.console_link("isaaclab_job_log", {"region_name": "us-east-1", "aws_domain": "aws.amazon.com",
                                                  "awslogs_group": "/aws/batch/job", "awslogs_region": "us-east-1",
                                                  "awslogs_stream_name": "isaaclab-train/default/abc"})
    assert logs.startswith("https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:log-groups")
    assert run_links.console_link("isaaclab_batch_job", {}) is None


def test_a_cost_that_cannot_be_worked_out_is_shown_as_such(tmp_path: Path) -> None:
    def refused(_h: dict) -> dict:
        raise PermissionError("AccessDenied")

    rec = record(xcoms={("submit_job", -1, "return_value"): handle("j", staged(tmp_path, "j", state="queued"))},
                 tis={("submit_job", -1): ("success", None, None, 1)})
    view = runs.describe(rec, artifacts.Artifacts(cost_of=refused))
    assert view["trials"][0]["cost"] == {"error": "PermissionError: AccessDenied"}
    assert view["cost"] == {"error": "PermissionError: AccessDenied"}


def test_a_cleared_run_that_publishes_again_is_read_again(tmp_path: Path) -> None:
    out = publish(tmp_path, "j", [1.0, 2.0])
    xcoms = {("publish_outputs", -1, "return_value"): {"outputUri": str(out)},
             ("submit_job", -1, "return_value"): handle("j", "-")}
    first = {("publish_outputs", -1): ("success", None, NOW, 1)}
    cache = artifacts.Artifacts(cost_of=costs)
    assert runs.describe(record(state="success", tis=first, xcoms=xcoms), cache)["trials"][0]["curve"][-1] == [1, 2.0]
    (out / "metrics.csv").write_text("step,wall_time,Train/mean_reward\n0,0,7.0\n")
    # published files are read once per publish: the same step end reads the cache...
    assert runs.describe(record(state="success", tis=first, xcoms=xcoms), cache)["trials"][0]["curve"][-1] == [1, 2.0]
    # ...and the step run again (cleared) reads them again
    again = {("publish_outputs", -1): ("success", None, NOW + timedelta(hours=1), 2)}
    assert runs.describe(record(state="success", tis=again, xcoms=xcoms), cache)["trials"][0]["curve"] == [[0, 7.0]]


def test_a_failed_job_shows_its_own_error(tmp_path: Path) -> None:
    """The trial carries the job's staged result.json error (what the runner diagnosed), not only "failed"."""
    staging = staged(tmp_path, "j", state="failed", iteration=0)
    error = "isaaclab train failed: FileNotFoundError: robot.usda (exit 1; the traceback is in runner.log)"
    (Path(staging) / "result.json").write_text(json.dumps({"status": "failed", "error": error}))
    tis = {("submit_job", -1): ("success", None, None, 1), ("wait_for_job", -1): ("failed", None, None, 1)}
    rec = record(state="failed", tis=tis, xcoms={("submit_job", -1, "return_value"): handle("j", staging)})
    (trial,) = runs.describe(rec, artifacts.Artifacts(cost_of=costs), NOW.timestamp(), file_url)["trials"]
    assert trial["error"] == error
