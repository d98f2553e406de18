"""sweep.py: a conf's seeds × grid expanded into trials (order, ids, job UUIDs, merged overrides) and the problems
JSON Schema cannot state."""

from __future__ import annotations

from isaaclab_pipeline import sweep

RUN = "3f0c1a52-0d5e-5d1f-8a8e-1b2c3d4e5f60"
CONF = {"trainingConfig": {"task": "T", "overrides": ["agent.max_iterations=5"]}, "outputS3Path": "s3://o/",
        "sweep": {"seeds": [1, 2], "grid": {"agent.algorithm.learning_rate": [0.001, 0.0003], "env.x": ["a"]}}}


def test_settings_outer_seeds_inner_with_stable_ids() -> None:
    trials = sweep.expand(CONF, RUN)
    assert sweep.count(CONF) == len(trials) == 4
    assert [t["trialId"] for t in trials] == ["s0-seed1", "s0-seed2", "s1-seed1", "s1-seed2"]
    assert {t["sweepId"] for t in trials} == {RUN}
    assert trials[0]["jobId"] == sweep.trial_job_id(RUN, "s0-seed1") == sweep.expand(CONF, RUN)[0]["jobId"]
    assert len({t["jobId"] for t in trials}) == 4 and RUN not in {t["jobId"] for t in trials}
    third = trials[2]
    assert third["settingLabel"] == "agent.algorithm.learning_rate=0.0003 env.x='a'"
    assert third["conf"]["trainingConfig"]["overrides"] == [
        "agent.max_iterations=5", "agent.algorithm.learning_rate=0.0003", "env.x='a'"]
    assert third["conf"]["trainingConfig"]["seed"] == 1 and "sweep" not in third["conf"]
    assert CONF["trainingConfig"]["overrides"] == ["agent.max_iterations=5"]  # the conf itself is left as it was


def test_a_conf_without_sweep_is_one_trial_with_the_runs_uuid() -> None:
    conf = {"trainingConfig": {"task": "T", "seed": 3}}
    [trial] = sweep.expand(conf, RUN)
    assert (trial["trialId"], trial["jobId"], trial["seed"], trial["settingLabel"]) == (None, RUN, 3, "(base)")
    assert sweep.count(conf) == 1 and not sweep.is_sweep(conf)


def test_problems_schema_cannot_state() -> None:
    conf = {"trainingConfig": {"task": "T", "seed": 4, "overrides": ["env.x=1"]},
            "sweep": {"seeds": [1], "grid": {"env.x": [2], "bad key": [1]}}}
    found = sweep.problems(conf)
    assert set(found) == {"sweep.grid.'env.x'", "sweep.grid.'bad key'", "trainingConfig.seed"}
    assert "also in trainingConfig.overrides" in found["sweep.grid.'env.x'"]
    assert sweep.problems({"trainingConfig": {"task": "T"}}) == {}
