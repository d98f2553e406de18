"""Experiments through the real DAG (``dag.test``): per-run overrides, a sweep fanned out one job per trial, the
comparison report, a failed trial that leaves the others published, and MLflow tracking against a real
``mlflow server`` (SQLite store, artifacts proxied, loopback only) that the test starts and stops.

The sweep with real training is tiny (2 seeds x 2 learning rates, 16 envs, 2 iterations); the failure case runs a
stand-in for the Isaac Lab interpreter that stages a real Isaac Lab event file (no training).
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_env import ISAACLAB_PYTHON, stand_in_runner

TASK = "Isaac-Custom-Cartpole-Direct"
LEARNING_RATES = [0.001, 0.0003]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated Airflow DB, a private pipeline home, fast polling, the example env in the asset store."""
    from pipeline_env import dag_home

    # the deployment's overrides: 128 steps per iteration (so the untrained cartpole ends an episode in iteration 0
    # and Train/mean_reward is logged) and a save interval the conf's own override replaces
    overrides = '["agent.num_steps_per_env=128", "agent.save_interval=50"]'
    with dag_home(tmp_path_factory.mktemp("experiments"), {"overrides": overrides}) as home:
        yield home


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real MLflow tracking server on loopback: SQLite backend store, artifacts served from a local folder."""
    from mlflow_env import running_mlflow_server

    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


def _run(conf: dict) -> tuple[Any, dict[tuple[str, int], str]]:
    from isaaclab_tools.cli import load_dag

    run = load_dag().test(run_conf=conf)
    return run, {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}


def _conf(home: Path, **training: Any) -> dict[str, Any]:
    return {"trainingConfig": {"task": TASK, "numEnvs": 16, "maxIterations": 2, **training},
            "inputS3AssetFilePath": f"file://{home}/assets/custom_cartpole/", "outputS3Path": f"file://{home}/outputs"}


def _stand_in_runner(path: Path, fail_seed: int | None = None, fail_override: str = "") -> Path:
    """The stand-in runner (pipeline_env) staging a real Isaac Lab event file and a result; the trial with
    ``fail_seed`` and ``fail_override`` "trains" but leaves no event file (its convert step fails, no retries)."""
    return stand_in_runner(path, f"""
stage("runner.log", "overrides: " + " ".join(spec["overrides"]) + "\\n")
if spec["seed"] == {fail_seed!r} and {fail_override!r} in spec["overrides"]:
    succeed()
    sys.exit(0)
stage_events()
succeed(seed=spec["seed"])
""")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_bad_overrides_are_refused_in_validate_config_naming_the_entry(home: Path) -> None:
    from isaaclab_tools.cli import load_dag

    conf = {"workflowName": "isaac-lab-training", "parameters": {
        **_conf(home, overrides=["agent.algorithm.learning_rate=3e-4", "hydra.run.dir=/tmp", "+agent.x=1",
                                 "env.x=${oc.env:HOME}", "agent.seed=1"]),
        "sweep": {"grid": {"agent.algorithm.gamma": [0.99, "0.9; rm -rf /"]}}}}
    jobs_before = set((home / "jobs").glob("*"))
    run = load_dag().test(run_conf=conf)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states["validate_config"] == "failed", states
    assert all(s in ("upstream_failed", "None") for t, s in states.items() if t != "validate_config"), states
    assert set((home / "jobs").glob("*")) == jobs_before  # nothing was submitted


def test_a_failed_trial_leaves_the_others_published_and_the_report_marks_it(home: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """3 seeds x 2 settings = 6 trials, one made to fail: five publish, the report has 6 rows and marks it, the run
    fails (a trial failed) while compare_trials succeeds."""
    from isaaclab_pipeline.config import job_uuid

    runner = _stand_in_runner(tmp_path / "runner", fail_seed=3, fail_override="agent.algorithm.learning_rate=0.0003")
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", str(runner))
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_MAX_CONCURRENT_JOBS", "2")
    conf = {**_conf(home, overrides=["env.episode_length_s=4"]),
            "sweep": {"seeds": [1, 2, 3], "grid": {"agent.algorithm.learning_rate": LEARNING_RATES}}}
    run, states = _run(conf)
    sweep = job_uuid("isaac-lab-training", run.run_id)
    out = home / "outputs" / sweep

    assert str(run.state) == "failed", states
    assert states[("compare_trials", -1)] == "success", states
    assert states[("decide_round_2", -1)] == "success"  # a grid sweep: no round 2, whatever round 1 did
    assert {s for k, s in states.items() if k[0].startswith("trial_round_")} == {"skipped"}, states
    failed = "s1-seed3"
    index = 5  # settings outer, seeds inner
    assert states[("wait_for_job", index)] == "success" and states[("convert_tensorboard_logs", index)] == "failed"
    assert states[("publish_outputs", index)] == "upstream_failed"
    for i in range(5):
        assert states[("publish_outputs", i)] == "success", (i, states)

    trials = sorted(p.name for p in (out / "trials").iterdir())
    assert trials == ["s0-seed1", "s0-seed2", "s0-seed3", "s1-seed1", "s1-seed2"]  # the failed one published nothing
    for name in trials:
        manifest = json.loads((out / "trials" / name / "manifest.json").read_text())
        assert {"metrics.csv", "summary.json", "training-config.json", "job-result.json"} <= {
            e["path"] for e in manifest["files"]}
    config = json.loads((out / "trials" / "s1-seed2" / "training-config.json").read_text())
    assert config["trainingConfig"]["overrides"] == ["env.episode_length_s=4", "agent.algorithm.learning_rate=0.0003"]
    assert config["trainingConfig"]["seed"] == 2 and "sweep" not in config
    assert config["trial"] == {"sweepId": sweep, "trialId": "s1-seed2", "seed": 2,
                               "setting": {"agent.algorithm.learning_rate": 0.0003},
                               "settingLabel": "agent.algorithm.learning_rate=0.0003"}
    assert config["jobId"] != sweep and len({json.loads((out / "trials" / n / "manifest.json").read_text())["jobId"]
                                              for n in trials}) == 5  # one job UUID (and staging folder) per trial

    rows = _rows(out / "trials.csv")
    assert [r["trial_id"] for r in rows] == ["s0-seed1", "s0-seed2", "s0-seed3", "s1-seed1", "s1-seed2", failed]
    assert [r["status"] for r in rows] == ["succeeded"] * 5 + ["failed"]
    assert rows[5]["failed_step"] == "convert_tensorboard_logs" and rows[5]["reason"]
    assert all(r["final_mean_reward"] for r in rows[:5])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 6 and summary["succeeded"] == 5
    assert [(f["trialId"], f["step"]) for f in summary["failed"]] == [(failed, "convert_tensorboard_logs")]
    by_setting = {s["setting"]: s for s in summary["settings"]}
    assert by_setting["agent.algorithm.learning_rate=0.0003"]["failed"] == [failed]
    assert by_setting["agent.algorithm.learning_rate=0.0003"]["finalMeanReward"]["n"] == 2
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the sweep's cost: all six jobs ran, the failed one too (its cost.json stayed in staging)
    cost = json.loads((out / "cost.json").read_text())
    assert cost["backend"] == "local" and cost["trials"] == 6 and cost["wallSeconds"] > 0
    assert summary["cost"]["wallSeconds"] == cost["wallSeconds"]


def test_one_run_with_overrides_publishes_as_before(home: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No sweep: one trial under {output}/{uuid}/ exactly as before, no report; the conf's overrides come after the
    deployment's (the conf's win) and are recorded in training-config.json."""
    from isaaclab_pipeline.config import job_uuid

    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", str(_stand_in_runner(tmp_path / "runner")))
    run, states = _run(_conf(home, seed=7, overrides=["agent.save_interval=1", "agent.algorithm.schedule=fixed"]))
    assert str(run.state) == "success", states
    assert states[("compare_trials", -1)] == "skipped"
    # halving's decisions return [] for one run: the later rounds' mapped groups run nothing, the run stays a success
    assert states[("decide_round_2", -1)] == states[("decide_round_3", -1)] == "success"
    later = {k: s for k, s in states.items() if k[0].startswith("trial_round_")}
    assert len(later) == 8 and set(later.values()) == {"skipped"}, later
    out = home / "outputs" / job_uuid("isaac-lab-training", run.run_id)
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "manifest.json" in files and not {"trials.csv", "comparison.png"} & files and not (out / "trials").exists()
    config = json.loads((out / "training-config.json").read_text())
    assert config["trainingConfig"]["overrides"] == ["agent.save_interval=1", "agent.algorithm.schedule='fixed'"]
    assert "trial" not in config
    assert (out / "runner-log.txt").read_text().split() == [
        "overrides:", "agent.num_steps_per_env=128", "agent.save_interval=50", "agent.save_interval=1",
        "agent.algorithm.schedule='fixed'"]


@pytest.mark.e2e  # 4 tiny real Isaac Lab trainings, one at a time (~2 min on 2 cores)
def test_sweep_trains_one_job_per_trial_reports_and_tracks_in_mlflow(home: Path, mlflow_server: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    from isaaclab_pipeline.config import job_uuid
    from mlflow import MlflowClient

    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_MLFLOW_EXPERIMENT", "experiments-journey")
    conf = {**_conf(home, overrides=["agent.save_interval=1"]),
            "sweep": {"seeds": [1, 2], "grid": {"agent.algorithm.learning_rate": LEARNING_RATES}}}
    started = time.monotonic()
    run, states = _run(conf)
    wall = time.monotonic() - started
    assert str(run.state) == "success", states
    sweep = job_uuid("isaac-lab-training", run.run_id)
    out = home / "outputs" / sweep
    trials = ["s0-seed1", "s0-seed2", "s1-seed1", "s1-seed2"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == trials

    # each trial: the usual layout, and Isaac Lab ran its setting, seed and the conf's override (which beat the
    # deployment's save_interval=50: a checkpoint every iteration)
    spans = []
    for name in trials:
        trial = out / "trials" / name
        files = {p.relative_to(trial).as_posix() for p in trial.rglob("*") if p.is_file()}
        assert {"checkpoints/model_0.pt", "checkpoints/model_1.pt", "metrics.csv", "summary.json", "reward_curve.png",
                "agent-params.txt", "env-params.txt", "exported/policy.pt", "exported/policy.onnx",
                "manifest.json"} <= files, files
        assert "checkpoints/policy.pt" not in files
        agent = (trial / "agent-params.txt").read_text()
        lr = LEARNING_RATES[int(name[1])]
        assert f"learning_rate: {lr}" in agent and "save_interval: 1\n" in agent and "num_steps_per_env: 128" in agent
        assert f"seed: {name.rsplit('seed', 1)[1]}\n" in agent
        job = json.loads((trial / "job-result.json").read_text())
        assert job["status"] == "succeeded" and job["seed"] == int(name.rsplit("seed", 1)[1])
        job_dir = home / "jobs" / json.loads((trial / "manifest.json").read_text())["jobId"]
        spans.append(((job_dir / "spec.json").stat().st_mtime, (job_dir / "exit_code").stat().st_mtime))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans  # one job at a time (the cap)

    # the report
    rows = _rows(out / "trials.csv")
    assert [(r["trial_id"], r["status"], r["seed"]) for r in rows] == [
        ("s0-seed1", "succeeded", "1"), ("s0-seed2", "succeeded", "2"), ("s1-seed1", "succeeded", "1"),
        ("s1-seed2", "succeeded", "2")]
    for r in rows:
        assert r["overrides"] == f"agent.save_interval=1 agent.algorithm.learning_rate={r['setting'].split('=')[1]}"
        assert float(r["final_mean_reward"]) == float(r["final_mean_reward"]) and float(r["wall_time_s"]) > 0
        assert r["iterations"] == "2" and r["mlflow_run_id"]
    summary = json.loads((out / "summary.json").read_text())
    assert [s["setting"] for s in summary["settings"]] == [f"agent.algorithm.learning_rate={lr}"
                                                           for lr in LEARNING_RATES]
    for s in summary["settings"]:
        final = s["finalMeanReward"]
        assert final["n"] == 2 and final["ci95"][0] <= final["mean"] <= final["ci95"][1]
    assert summary["best"]["setting"] in {s["setting"] for s in summary["settings"]}
    assert (out / "comparison.png").stat().st_size > 10_000

    # MLflow: a parent run for the sweep, one nested run per trial with its params, metric histories and artifacts
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("experiments-journey")
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`isaaclab.sweepId` = '{sweep}'")
    parent = [r for r in runs if r.data.tags["isaaclab.kind"] == "sweep"]
    children = {r.data.tags["isaaclab.trialId"]: r for r in runs if r.data.tags["isaaclab.kind"] == "trial"}
    assert len(parent) == 1 and sorted(children) == trials
    assert parent[0].info.status == "FINISHED" and parent[0].data.metrics["trials_succeeded"] == 4
    assert {a.path for a in client.list_artifacts(parent[0].info.run_id)} == {"trials.csv", "summary.json",
                                                                               "comparison.png", "cost.json"}
    cost = json.loads((out / "cost.json").read_text())  # locally: the four jobs' wall time
    assert cost["trials"] == 4 and parent[0].data.metrics["wall_seconds"] == cost["wallSeconds"] > 0
    for name, child in children.items():
        trial = out / "trials" / name
        assert child.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
        assert child.info.status == "FINISHED" and child.info.run_id == next(
            r["mlflow_run_id"] for r in rows if r["trial_id"] == name)
        params = child.data.params
        assert params["seed"] == name.rsplit("seed", 1)[1]
        assert params["override.agent.algorithm.learning_rate"] == str(LEARNING_RATES[int(name[1])])
        assert params["overrides"].startswith("agent.save_interval=1 ")
        assert params["trainingConfig.numEnvs"] == "16" and params["trainingConfig.task"] == TASK
        with (trial / "metrics.csv").open() as f:
            expected = [(int(r["step"]), float(r["Train/mean_reward"])) for r in csv.DictReader(f)
                        if r.get("Train/mean_reward")]
        history = client.get_metric_history(child.info.run_id, "Train/mean_reward")
        assert sorted((m.step, m.value) for m in history) == expected and len(expected) == 2
        assert len(client.get_metric_history(child.info.run_id, "Loss/value_function")) == 2 or len(
            client.get_metric_history(child.info.run_id, "Loss/value")) == 2
        listed = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {"metrics.csv", "reward_curve.png", "training-config.json", "exported", "checkpoints"} <= listed
        for rel, src in (("exported/policy.pt", "exported/policy.pt"), ("exported/policy.onnx", "exported/policy.onnx"),
                         ("checkpoints/model_1.pt", "checkpoints/model_1.pt")):
            local = Path(client.download_artifacts(child.info.run_id, rel, str(home / "mlflow-dl" / name)))
            assert hashlib.sha256(local.read_bytes()).hexdigest() == hashlib.sha256(
                (trial / src).read_bytes()).hexdigest(), rel
    print(f"\nsweep of 4 trials through the DAG: {wall:.0f} s; best {summary['best']['setting']}: final mean reward "
          f"{summary['best']['finalMeanReward']['mean']:.3f}")


# reads a checkpoint's iteration and its Adam step count with the Isaac Lab venv's torch (the Airflow venv has none)
READ_CHECKPOINT = r'''
import json, sys, torch
out = {}
for path in sys.argv[1:]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    state = ckpt["optimizer_state_dict"]["state"]
    out[path] = {"iter": ckpt["iter"], "adamSteps": max(int(s["step"]) for s in state.values()) if state else 0}
print(json.dumps(out))
'''


@pytest.mark.e2e  # 6 tiny real Isaac Lab trainings: 4 trials x 2 iterations, then 2 survivors x 2 more
def test_halving_sweep_resumes_the_survivors_and_reports_both_rounds(home: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """4 candidates, 2 rounds, keep 0.5: round 1 trains each for 2 of maxIterations 4, the 2 best by their last
    Train/mean_reward resume from their own round-1 checkpoint for 2 more (the count and the optimizer go on), the
    2 others have no round-2 job; the report lists both rounds."""
    import subprocess

    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_pipeline.halving import round_job_id

    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_MAX_CONCURRENT_JOBS", "2")  # two tiny jobs at once: half the wall time
    rates = [0.01, 0.003, 0.001, 0.0001]
    conf = {**_conf(home, seed=1, maxIterations=4),
            "sweep": {"grid": {"agent.algorithm.learning_rate": rates},
                      "search": {"method": "halving", "rounds": 2, "keep": 0.5}}}
    run, states = _run(conf)
    assert str(run.state) == "success", states
    assert states[("decide_round_2", -1)] == "success" and states[("compare_trials", -1)] == "success"
    assert states[("decide_round_3", -1)] == "success"  # no round 3: its mapped group ran nothing
    assert not [k for k, s in states.items() if k[0].startswith("trial_round_3.") and s not in ("skipped", "None")]
    sweep = job_uuid("isaac-lab-training", run.run_id)
    out = home / "outputs" / sweep
    trials = [f"s{i}-seed1" for i in range(4)]
    assert sorted(p.name for p in (out / "trials").iterdir()) == trials

    # round 1: everyone, 2 iterations; the survivors are the 2 best last values of their published metrics.csv
    last = {}
    for name in trials:
        with (out / "trials" / name / "round-1" / "metrics.csv").open() as f:
            series = [(int(r["step"]), float(r["Train/mean_reward"])) for r in csv.DictReader(f)
                      if r.get("Train/mean_reward")]
        assert max(s for s, _ in series) == 1
        last[name] = max(series)[1]
    survivors = sorted(trials, key=lambda t: (-last[t], t))[:2]
    losers = sorted(set(trials) - set(survivors))
    for name in losers:  # stopped after round 1: no round-2 folder, no round-2 job
        assert sorted(p.name for p in (out / "trials" / name).iterdir()) == ["round-1"]
        assert not (home / "jobs" / round_job_id(sweep, name, 2)).exists()

    # round 2: the survivors resumed from their own round-1 checkpoint: the iteration count and the optimizer go on
    def checkpoints(folder: Path) -> dict[int, Path]:
        return {int(p.stem.split("_")[1]): p for p in (folder / "checkpoints").glob("model_*.pt")}

    pairs = []
    for name in survivors:
        first, second = checkpoints(out / "trials" / name / "round-1"), checkpoints(out / "trials" / name / "round-2")
        assert max(first) == 1 and min(second) > max(first) and max(second) == max(first) + 2 - 1, (first, second)
        config = json.loads((out / "trials" / name / "round-2" / "training-config.json").read_text())
        tc = config["trainingConfig"]
        assert (tc["init"], tc["maxIterations"]) == ("resume", 2)
        assert tc["resumeCheckpoint"].endswith(f"/trials/{name}/round-1/checkpoints/model_1.pt")
        assert config["trial"]["round"] == 2 and config["jobId"] == round_job_id(sweep, name, 2)
        pairs.append((first[max(first)], second[max(second)]))
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", READ_CHECKPOINT, *(str(p) for pair in pairs for p in pair)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    for before, after in pairs:
        b, a = facts[str(before)], facts[str(after)]
        assert (b["iter"], a["iter"]) == (1, 2)
        assert a["adamSteps"] == 2 * b["adamSteps"] > 0  # resumed, not restarted: 2 iterations' steps on top of 2

    # the report: a row per trial and round, every round with its ranking and survivors, the env steps in all
    rows = _rows(out / "trials.csv")
    assert sorted((r["trial_id"], r["round"]) for r in rows) == sorted(
        [(t, "1") for t in trials] + [(t, "2") for t in survivors])
    assert all(r["status"] == "succeeded" and int(r["env_steps"]) == 2 * 16 * 128 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    rounds = summary["rounds"]
    assert [(r["round"], r["iterations"], sorted(r["trials"])) for r in rounds] == [
        (1, 2, trials), (2, 4, sorted(survivors))]
    assert rounds[0]["survivors"] == survivors and [x["trialId"] for x in rounds[0]["ranking"]][:2] == survivors
    assert rounds[0]["ranking"][0]["value"] == pytest.approx(last[survivors[0]])
    assert summary["envSteps"] == 6 * 2 * 16 * 128
    assert {s["setting"] for s in summary["settings"]} == {
        next(r["setting"] for r in rows if r["trial_id"] == t) for t in survivors}
    assert summary["best"]["setting"] in {s["setting"] for s in summary["settings"]}
    assert (out / "comparison.png").stat().st_size > 10_000
