"""Per-run overrides and sweeps: the grammar, refusals naming the entry, canonical text, trial expansion, the cap."""

from __future__ import annotations

import ast
import re

import pytest
from isaaclab_pipeline import overrides as ov
from isaaclab_pipeline import sweep
from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, validate_conf
from isaaclab_pipeline.schemas import load_schema

BASE = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}, "outputS3Path": "s3://bucket/out"}
JOB = "3f0c1a52-0d5e-5d1f-8a8e-1b2c3d4e5f60"


def with_overrides(*entries: object, **extra: object) -> dict:
    return {**BASE, "trainingConfig": {**BASE["trainingConfig"], "overrides": list(entries)}, **extra}


def problems(conf: dict) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        validate_conf(conf)
    return info.value.problems


@pytest.mark.parametrize(("entry", "canonical", "value"), [
    ("agent.algorithm.learning_rate=3e-4", "agent.algorithm.learning_rate=0.0003", 3e-4),
    ("env.episode_length_s=10", "env.episode_length_s=10", 10),
    ("agent.save_interval=25", "agent.save_interval=25", 25),
    ("agent.empirical_normalization=True", "agent.empirical_normalization=true", True),
    ("agent.policy.noise_std_type=null", "agent.policy.noise_std_type=null", None),
    ("agent.algorithm.schedule=adaptive", "agent.algorithm.schedule='adaptive'", "adaptive"),
    ('agent.algorithm.schedule="fixed"', "agent.algorithm.schedule='fixed'", "fixed"),
    ("agent.experiment_name='1e-3'", "agent.experiment_name='1e-3'", "1e-3"),  # quoted: stays a string
    ("env.sim.render_mode=cuda:0", "env.sim.render_mode='cuda:0'", "cuda:0"),
])
def test_accepted_entries_become_one_canonical_text(entry: str, canonical: str, value: object) -> None:
    key, parsed, text = ov.parse(entry)
    assert (parsed, text) == (value, canonical) and type(parsed) is type(value)
    assert validate_conf(with_overrides(entry))["trainingConfig"]["overrides"] == [canonical]
    assert re.fullmatch(load_schema()["properties"]["trainingConfig"]["properties"]["overrides"]["items"]["pattern"],
                        canonical)


@pytest.mark.parametrize("value", [3e-4, 10, -2, 1.5e10, True, False, None, "adaptive", "a/b:c@d+e-f.g_h", ""])
def test_canonical_text_reads_back_as_the_same_json_scalar(value: object) -> None:
    """Isaac Lab 3 types a value with ast.literal_eval (after true/false/null); 2.x with Hydra's grammar, which
    agrees on these forms."""
    text = ov.format_value(value)
    literals = {"true": True, "false": False, "null": None}
    parsed = literals[text] if text in literals else ast.literal_eval(text)
    assert parsed == value and type(parsed) is type(value)
    assert ov.parse(f"agent.x={text}")[1] == value


@pytest.mark.parametrize(("entry", "says"), [
    ("hydra.run.dir=/tmp", "hydra.* keys are not allowed"),
    ("+agent.new_key=1", "'+'/'~' prefixes"),
    ("++agent.x=1", "'+'/'~' prefixes"),
    ("~agent.algorithm", "'+'/'~' prefixes"),
    ("trainer.max_epochs=3", "unknown root 'trainer'"),
    ("agent.x=${oc.env:AWS_SECRET_ACCESS_KEY}", "interpolation"),
    ("agent.x=$(touch /tmp/pwned)", "interpolation"),
    ("agent.x=1;rm -rf /", "characters that are not allowed"),
    ("agent.x=a|b", "characters that are not allowed"),
    ("agent.x=`id`", "characters that are not allowed"),
    ("agent.x=a b", "characters that are not allowed"),
    ("agent.policy.actor_hidden_dims=[64,64]", "only JSON scalars"),
    ("agent.x={a: 1}", "only JSON scalars"),
    ("agent.x=1_000", "not a JSON number"),
    ("agent.x=", "the value is empty"),
    ("agent.x='open", "unbalanced quote"),
    ("agent.layers.0=3", "dotted path of identifiers"),
    ("agent@pkg.x=1", "'@package' keys"),
    ("agent.x", "has no '='"),
    ("agent.x = 1", "dotted path of identifiers"),
    ("agent.seed=1", "trainingConfig.seed"),
    ("env.scene.num_envs=64", "trainingConfig.numEnvs"),
    ("agent.max_iterations=5", "trainingConfig.maxIterations"),
    ("agent.device=cuda:1", "isaaclab_device"),
    ("agent.logger=wandb", "MLflow tracking is the deployment's"),
])
def test_bad_overrides_are_refused_naming_the_entry(entry: str, says: str) -> None:
    found = problems(with_overrides("agent.save_interval=10", entry))
    assert len(found) == 1 and found[0].startswith("trainingConfig.overrides.1: ") and says in found[0], found


def test_wrong_types_and_repeats_are_refused() -> None:
    assert problems(with_overrides(3)) == ['trainingConfig.overrides.0: 3 is not a string; write '
                                           '"<env|agent>.<path>=<value>"']
    assert "already set by entry 0" in problems(with_overrides("agent.x=1", "agent.x=2"))[0]
    too_many = problems(with_overrides(*(f"agent.k{i}=1" for i in range(40))))
    assert any("at most 32" in p for p in too_many)
    conf = {**BASE, "trainingConfig": {**BASE["trainingConfig"], "overrides": "agent.x=1"}}
    assert any(p.startswith("trainingConfig.overrides: ") for p in problems(conf))


def test_no_overrides_leaves_the_normalized_conf_as_before() -> None:
    assert "overrides" not in validate_conf(BASE)["trainingConfig"]


def test_every_junk_value_is_a_conf_problem_not_a_crash() -> None:
    for junk in (None, 1.5, {"a": 1}, [[1]], "\x00", "agent.x=\n", "a" * 10_000, ["=" * 500]):
        with pytest.raises(ConfigValidationError):
            validate_conf(with_overrides(junk))


SWEEP = {"seeds": [1, 2, 3], "grid": {"agent.algorithm.learning_rate": [1e-3, 3e-4], "agent.algorithm.gamma": [0.99]}}


def test_a_sweep_expands_settings_times_seeds_each_trial_one_ordinary_conf() -> None:
    conf = validate_conf(with_overrides("agent.save_interval=5", sweep=SWEEP))
    assert conf["trainingConfig"]["seed"] is None  # the seeds are the sweep's
    trials = sweep.expand(conf, JOB)
    assert sweep.count(conf) == len(trials) == 6
    assert [t["trialId"] for t in trials] == ["s0-seed1", "s0-seed2", "s0-seed3", "s1-seed1", "s1-seed2", "s1-seed3"]
    assert len({t["jobId"] for t in trials}) == 6 and JOB not in {t["jobId"] for t in trials}
    assert [t["jobId"] for t in sweep.expand(conf, JOB)] == [t["jobId"] for t in trials]  # stable across retries
    last = trials[-1]
    assert last["setting"] == {"agent.algorithm.learning_rate": 3e-4, "agent.algorithm.gamma": 0.99}
    assert last["settingLabel"] == "agent.algorithm.learning_rate=0.0003 agent.algorithm.gamma=0.99"
    assert last["conf"]["trainingConfig"]["overrides"] == [
        "agent.save_interval=5", "agent.algorithm.learning_rate=0.0003", "agent.algorithm.gamma=0.99"]
    assert last["conf"]["trainingConfig"]["seed"] == 3 and "sweep" not in last["conf"]
    assert validate_conf(last["conf"])["trainingConfig"]["overrides"] == last["conf"]["trainingConfig"]["overrides"]


def test_a_sweep_without_seeds_runs_each_setting_with_the_conf_seed() -> None:
    conf = validate_conf({**BASE, "trainingConfig": {"task": "T", "seed": 9},
                          "sweep": {"grid": {"env.episode_length_s": [5, 10]}}})
    assert [(t["trialId"], t["seed"]) for t in sweep.expand(conf, JOB)] == [("s0-seed9", 9), ("s1-seed9", 9)]


def test_one_run_is_one_trial_under_the_run_uuid() -> None:
    conf = validate_conf(BASE)
    [trial] = sweep.expand(conf, JOB)
    assert (trial["trialId"], trial["jobId"], trial["conf"]) == (None, JOB, conf)


@pytest.mark.parametrize(("bad", "says"), [
    ({"grid": {"hydra.job.chdir": [True]}}, "sweep.grid.'hydra.job.chdir': "),
    ({"grid": {"agent.x": ["a;b"]}}, "sweep.grid.'agent.x'.0: "),
    ({"grid": {"agent.x": [[1, 2]]}}, "sweep.grid.'agent.x'.0: "),
    ({"grid": {"agent.save_interval": [1, 2]}}, "also in trainingConfig.overrides"),
    ({"grid": {"agent.x": []}}, "sweep.grid.'agent.x': "),
    ({"seeds": [1, 1]}, "sweep.seeds: "),
    ({"seeds": [-1]}, "sweep.seeds.0: "),
    ({}, "sweep: "),
    ({"grids": {}}, "did you mean 'grid'"),
])
def test_bad_sweeps_are_refused(bad: dict, says: str) -> None:
    found = problems(with_overrides("agent.save_interval=5", sweep=bad))
    assert any(says in p for p in found), found


def test_a_seed_and_sweep_seeds_together_are_refused() -> None:
    conf = {**BASE, "trainingConfig": {"task": "T", "seed": 3}, "sweep": {"seeds": [1, 2]}}
    assert any(p.startswith("trainingConfig.seed: a sweep takes its seeds") for p in problems(conf))


def test_the_deployment_caps_trials_before_any_gpu_time() -> None:
    conf = validate_conf(with_overrides(sweep=SWEEP))
    assert apply_deployment(conf, default_output_uri="", max_nodes=1, max_trials=6)["sweep"] == conf["sweep"]
    with pytest.raises(ConfigValidationError, match=r"sweep: 6 trials \(2 setting\(s\) x 3 seed\(s\)\).*at most 4"):
        apply_deployment(conf, default_output_uri="", max_nodes=1, max_trials=4)


def test_job_specs_get_the_deployment_overrides_then_the_conf_s(tmp_path) -> None:
    from isaaclab_pipeline.resolve import build_trial_specs
    from isaaclab_pipeline.settings import PipelineSettings

    settings = PipelineSettings(staging_uri=str(tmp_path / "staging"), overrides=["agent.save_interval=50"])
    conf = validate_conf({**with_overrides("agent.save_interval=1", sweep={"seeds": [4, 5]}),
                          "outputS3Path": str(tmp_path / "out")})
    items = build_trial_specs(conf, JOB, settings)
    assert [i["job_spec"]["overrides"] for i in items] == [["agent.save_interval=50", "agent.save_interval=1"]] * 2
    assert [i["job_spec"]["seed"] for i in items] == [4, 5]
    assert [i["trial"]["outputUri"] for i in items] == [f"{tmp_path}/out/{JOB}/trials/s0-seed4",
                                                        f"{tmp_path}/out/{JOB}/trials/s0-seed5"]
    assert len({i["job_spec"]["stagingUri"] for i in items}) == 2
    [single] = build_trial_specs(validate_conf({**BASE, "outputS3Path": str(tmp_path / "out")}), JOB, settings)
    assert single["trial"]["outputUri"] == f"{tmp_path}/out/{JOB}" and single["job_spec"]["jobId"] == JOB
    assert single["job_spec"]["overrides"] == ["agent.save_interval=50"]
