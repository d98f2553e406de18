"""tracking/mlflow.py without a server: what a trial logs (params, metric keys and histories, the checkpoint it
picks) and what it never shows (a password in the tracking URI). The journeys log to a real server."""

from __future__ import annotations

from pathlib import Path

from isaaclab_pipeline.tracking import mlflow as tracking

CONF = {"trainingConfig": {"task": "Isaac-Cartpole-Direct-v0", "numEnvs": 64, "seed": 7, "overrides": [
    "agent.algorithm.learning_rate=0.001", "env.sim.dt=0.01"]}, "outputS3Path": "s3://out/",
    "vams": {"taskToken": "secret"}, "sweep": {"seeds": [1, 2]}}


def test_a_password_in_the_tracking_uri_is_never_shown() -> None:
    assert tracking.shown("https://user:pa55@mlflow.example.com/") == "https://user:***@mlflow.example.com/"
    assert tracking.shown("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_trial_params_flatten_the_conf_without_vams_or_sweep() -> None:
    params = tracking.trial_params(CONF)
    assert params["trainingConfig.numEnvs"] == "64" and params["outputS3Path"] == "s3://out/"
    assert params["seed"] == "7"
    assert params["overrides"] == "agent.algorithm.learning_rate=0.001 env.sim.dt=0.01"
    assert params["override.agent.algorithm.learning_rate"] == "0.001" and params["override.env.sim.dt"] == "0.01"
    assert not any(k.startswith(("vams", "sweep")) for k in params) and "trainingConfig.overrides" not in params


def test_metrics_keep_each_tag_history_by_step(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text("step,wall_time,Reward / Total reward (mean),Loss/x\n0,1.5,1.0,nan\n1,2.5,2.0,0.3\nbad,3,4,4\n")
    got = [(m.key, m.value, m.timestamp, m.step) for m in tracking.metrics_from_csv(csv)]
    assert got == [("Reward / Total reward _mean_", 1.0, 1500, 0), ("Reward / Total reward _mean_", 2.0, 2500, 1),
                   ("Loss/x", 0.3, 2500, 1)]
    assert tracking.metric_key("a(b)*c") == "a_b__c" and len(tracking.metric_key("x" * 300)) == 250


def test_the_newest_checkpoint_is_logged() -> None:
    names = ["checkpoints/model_2.pt", "checkpoints/model_10.pt", "checkpoints/attempt-1/model_12.pt",
             "exported/policy.pt", "checkpoints/notes.txt"]
    assert tracking._newest_checkpoint(names) == "checkpoints/model_10.pt"
    assert tracking._newest_checkpoint(["exported/policy.pt"]) is None


def test_a_halving_round_is_its_own_run_named_and_tagged_by_round() -> None:
    trial = {"trialId": "s0-seed1", "sweepId": "5c1f", "settingLabel": "agent.algorithm.learning_rate=0.01"}
    common = {"job_id": "7f5e4aba-7f55", "conf": CONF, "out_uri": "s3://out/x/", "dag_run_id": "manual__1"}
    tags, name = tracking.run_tags(**common, trial=trial, parent_run_id="p1")
    assert name == "s0-seed1" and "isaaclab.round" not in tags
    assert (tags["isaaclab.kind"], tags["isaaclab.trialId"], tags["mlflow.parentRunId"]) == ("trial", "s0-seed1", "p1")
    tags, name = tracking.run_tags(**common, trial={**trial, "round": 2}, parent_run_id="p1")
    assert (name, tags["isaaclab.round"], tags["isaaclab.sweepId"]) == ("s0-seed1/round-2", "2", "5c1f")
    tags, name = tracking.run_tags(**common)
    assert (name, tags["isaaclab.kind"]) == ("Isaac-Cartpole-Direct-v0-7f5e4aba", "run")
    assert "isaaclab.trialId" not in tags and "mlflow.parentRunId" not in tags
