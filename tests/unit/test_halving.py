"""halving.py: successive halving's rounds (iterations, ranking, survivors, job UUIDs), its validation, and the
decision over published trial folders (file:// outputs: the survivors resume from their own last checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from isaaclab_pipeline import halving, steps, sweep
from isaaclab_pipeline.config import ConfigValidationError, validate_conf
from isaaclab_pipeline.settings import PipelineSettings

RUN = "3f0c1a52-0d5e-5d1f-8a8e-1b2c3d4e5f60"
RATES = [0.01, 0.003, 0.001, 0.0001]


def _conf(out: str = "s3://out-bucket/isaac/", **search: Any) -> dict[str, Any]:
    return {"trainingConfig": {"task": "T", "seed": 1, "maxIterations": 10, "numEnvs": 16, "rlLibrary": "rsl_rl"},
            "outputS3Path": out,
            "sweep": {"grid": {"agent.algorithm.learning_rate": RATES}, "search": {"method": "halving", **search}}}


def test_rounds_split_max_iterations_and_the_last_ends_at_it() -> None:
    assert halving.targets(4, 2) == [2, 4] and halving.increments(4, 2) == [2, 2]
    assert halving.targets(10, 3) == [3, 6, 10] and halving.increments(10, 3) == [3, 3, 4]
    assert sum(halving.increments(7, 2)) == 7


def test_ranking_keeps_the_best_ceil_n_keep_ties_by_trial_id() -> None:
    scores = {"s2-seed1": 1.0, "s0-seed1": 3.0, "s1-seed1": 3.0, "s3-seed1": None, "s4-seed1": float("nan")}
    assert halving.rank(scores) == ["s0-seed1", "s1-seed1", "s2-seed1"]  # no score (failed, NaN): never ranked
    assert halving.survivors(scores, 0.5) == ["s0-seed1", "s1-seed1", "s2-seed1"]  # ceil(5 * 0.5) = 3
    assert halving.survivors(scores, 0.2) == ["s0-seed1"]
    assert [halving.keep_count(n, k) for n, k in ((4, 0.5), (3, 0.5), (1, 0.5), (5, 0.3), (10, 0.1))] == [2, 2, 1, 2, 1]
    assert halving.survivors({"a": None, "b": None}, 0.5) == []


def test_each_round_has_its_own_stable_job_uuid_and_folder() -> None:
    ids = {halving.round_job_id(RUN, "s0-seed1", r) for r in (1, 2, 3)}
    assert len(ids) == 3 and halving.round_job_id(RUN, "s0-seed1", 2) == halving.round_job_id(RUN, "s0-seed1", 2)
    assert sweep.trial_job_id(RUN, "s0-seed1") not in ids
    assert halving.output_key(RUN, "s0-seed1", 2) == f"{RUN}/trials/s0-seed1/round-2"


def test_expand_gives_round_one_its_share_of_the_iterations() -> None:
    trials = sweep.expand(_conf(rounds=3), RUN)
    assert [t["trialId"] for t in trials] == ["s0-seed1", "s1-seed1", "s2-seed1", "s3-seed1"]
    for trial in trials:
        assert trial["round"] == 1 and trial["conf"]["trainingConfig"]["maxIterations"] == 3
        assert trial["jobId"] == halving.round_job_id(RUN, trial["trialId"], 1)
        assert trial["outputKey"] == f"{RUN}/trials/{trial['trialId']}/round-1"
    assert "round" not in sweep.expand({**_conf(), "sweep": {"grid": {"env.x": [1, 2]}}}, RUN)[0]  # a plain grid
    assert halving.search(_conf())["metric"] == "Train/mean_reward"  # the library's headline reward tag
    assert halving.search({**_conf(), "trainingConfig": {"rlLibrary": "skrl"}})["metric"] == (
        "Reward / Total reward (mean)")


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"sweep": {"grid": {"env.x": [1]}, "search": {"method": "halving"}}}, "sweep.grid", "at least 2 settings"),
    ({"sweep": {"seeds": [1, 2], "search": {"method": "halving"}}}, "sweep.grid", "give sweep.grid"),
    ({"trainingConfig": {"task": "T", "maxIterations": 1}}, "trainingConfig.maxIterations", "raise maxIterations"),
    ({"trainingConfig": {"task": "T", "mode": "evaluate", "checkpointPath": "s3://b/m.pt"}}, "sweep.search",
     "remove sweep.search"),
    ({"search": {"method": "halving", "keep": 1}}, "sweep.search.keep", "e.g. 0.5 keeps the better half"),
    ({"search": {"method": "halving", "keep": 0}}, "sweep.search.keep", "between 0 and 1"),
    ({"search": {"method": "halving", "rounds": 4}}, "sweep.search.rounds", "use 2..3"),
    ({"search": {"method": "tpe"}}, "sweep.search.method", "use 'halving'"),
    ({"search": {"method": "halving", "budget": 3}}, "sweep.search", "budget"),
])
def test_bad_searches_are_refused_naming_the_field(change: dict[str, Any], field: str, words: str) -> None:
    conf = {"trainingConfig": {"task": "T", "maxIterations": 10, "seed": 1},
            "sweep": {"grid": {"agent.algorithm.learning_rate": RATES}, "search": {"method": "halving"}}}
    if "search" in change:
        conf["sweep"]["search"] = change["search"]
    else:
        conf.update(change)
    with pytest.raises(ConfigValidationError) as caught:
        validate_conf(conf)
    text = str(caught.value)
    assert field in text and words in text, text


def test_a_fine_halving_conf_validates() -> None:
    conf = validate_conf(_conf(rounds=2, keep=0.5, metric="Train/mean_reward"))
    assert conf["sweep"]["search"]["method"] == "halving"


def _publish(out: Path, trial: dict[str, Any], reward: float | None, checkpoints: tuple[int, ...] = (0, 1)) -> None:
    """A trial's round as publish leaves it: metrics.csv, its checkpoints, manifest.json last."""
    folder = out / trial["outputKey"]
    (folder / "checkpoints").mkdir(parents=True)
    rows = ["step,wall_time,Train/mean_reward"] + (["0,1.0,0.5", f"1,2.0,{reward}"] if reward is not None else [])
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    for it in checkpoints:
        (folder / "checkpoints" / f"model_{it}.pt").write_bytes(b"ckpt")
    (folder / "agent-params.txt").write_text("num_steps_per_env: 24\nsave_interval: 50\n")
    (folder / "manifest.json").write_text(json.dumps({"files": []}))


def test_the_decision_resumes_the_best_from_their_own_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "out"
    conf = validate_conf(_conf(f"file://{out}", keep=0.5))
    trials = sweep.expand(conf, RUN)
    for trial, reward in zip(trials, [1.0, 3.0, None, 2.0], strict=True):  # s2 failed to log a reward
        _publish(out, trial, reward)
    items = [{"job_spec": {}, "trial": {**t, "outputUri": f"file://{out}/{t['outputKey']}"}} for t in trials]
    settings = PipelineSettings(staging_uri=f"file://{tmp_path}/staging")
    validated = {"conf": conf, "jobId": RUN}

    nxt = steps.decide_round_2(validated, items, settings)
    assert [i["trial"]["trialId"] for i in nxt] == ["s1-seed1", "s3-seed1"]
    assert steps.decide_round_2(validated, items, settings) == nxt  # a retried decision: the same survivors and UUIDs
    for item in nxt:
        trial, spec = item["trial"], item["job_spec"]
        tc = trial["conf"]["trainingConfig"]
        assert (trial["round"], tc["maxIterations"], tc["init"]) == (2, 5, "resume")
        assert tc["resumeCheckpoint"] == f"file://{out}/{RUN}/trials/{trial['trialId']}/round-1/checkpoints/model_1.pt"
        assert spec["jobId"] == trial["jobId"] == halving.round_job_id(RUN, trial["trialId"], 2)
        assert spec["resumeCheckpointUri"] == tc["resumeCheckpoint"] and spec["maxIterations"] == 5
        assert spec["init"] == "resume"
        assert trial["outputUri"] == f"file://{out}/{RUN}/trials/{trial['trialId']}/round-2"
    # no round 3 in a 2-round conf, nothing after an empty round, nothing for a grid or a single run
    assert steps.decide_round_3(validated, nxt, settings) == []
    assert steps.decide_round_2(validated, [], settings) == []
    grid = validate_conf({**_conf(), "sweep": {"grid": {"env.x": [1, 2]}}})
    assert steps.decide_round_2({"conf": grid, "jobId": RUN}, items, settings) == []
    assert steps.decide_round_2(None, None, settings) == []  # resolve failed: nothing to decide

    summary = halving.rounds_summary(conf, [*items, *nxt], None)
    assert [(r["round"], r["iterations"], r["survivors"]) for r in summary] == [
        (1, 5, ["s1-seed1", "s3-seed1"]), (2, 10, [])]
    assert [x["trialId"] for x in summary[0]["ranking"]] == ["s1-seed1", "s3-seed1", "s0-seed1"]
    assert halving.env_steps(items[0], None) == 5 * 16 * 24


def test_a_survivor_without_a_checkpoint_fails_the_decision_with_the_fix(tmp_path: Path) -> None:
    out = tmp_path / "out"
    conf = validate_conf(_conf(f"file://{out}", keep=0.25))
    trials = sweep.expand(conf, RUN)
    for trial, reward in zip(trials, [1.0, 3.0, 0.0, 2.0], strict=True):
        _publish(out, trial, reward, checkpoints=() if trial["trialId"] == "s1-seed1" else (0, 1))
    items = [{"job_spec": {}, "trial": {**t, "outputUri": f"file://{out}/{t['outputKey']}"}} for t in trials]
    with pytest.raises(ValueError, match=r"sweep.search: trial s1-seed1 published no checkpoint in round 1"):
        halving.decide(conf, RUN, 2, items, PipelineSettings(staging_uri=f"file://{tmp_path}/staging"))


def test_the_plot_joins_each_trials_rounds() -> None:
    rows = [{"trial_id": "s0-seed1", "round": 2, "setting": "lr=1"}, {"trial_id": "s0-seed1", "round": 1,
                                                                      "setting": "lr=1"},
            {"trial_id": "s1-seed1", "round": 1, "setting": "lr=2"}]
    curves = halving.curves_by_trial(rows, [[(1, 2.0), (2, 3.0)], [(0, 1.0), (1, 1.5)], [(0, 0.5)]])
    # round 2 resumed at index 1 (rsl_rl logs it again): round 1's point stays there, round 2 goes on from it
    assert curves == {"s0-seed1 lr=1": [[(0, 1.0), (1, 1.5), (2, 3.0)]], "s1-seed1 lr=2": [[(0, 0.5)]]}


def test_three_rounds_resume_round_two_from_its_own_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    conf = validate_conf(_conf(f"file://{out}", rounds=3, keep=0.5))
    settings = PipelineSettings(staging_uri=f"file://{tmp_path}/staging")
    validated = {"conf": conf, "jobId": RUN}
    trials = sweep.expand(conf, RUN)
    for trial, reward in zip(trials, [1.0, 3.0, 0.0, 2.0], strict=True):
        _publish(out, trial, reward)
    items = [{"job_spec": {}, "trial": {**t, "outputUri": f"file://{out}/{t['outputKey']}"}} for t in trials]
    second = steps.decide_round_2(validated, items, settings)
    assert [(i["trial"]["trialId"], i["job_spec"]["maxIterations"]) for i in second] == [("s1-seed1", 3),
                                                                                         ("s3-seed1", 3)]
    for item, reward in zip(second, [1.0, 5.0], strict=True):  # round 2 turns the order round
        _publish(out, item["trial"], reward, checkpoints=(2, 4))
    [third] = steps.decide_round_3(validated, second, settings)
    trial = third["trial"]
    assert (trial["trialId"], trial["round"], third["job_spec"]["maxIterations"]) == ("s3-seed1", 3, 4)  # 3 + 3 + 4
    resume = trial["conf"]["trainingConfig"]["resumeCheckpoint"]
    assert resume.endswith("/trials/s3-seed1/round-2/checkpoints/model_4.pt")
    assert trial["jobId"] == halving.round_job_id(RUN, "s3-seed1", 3) and trial["outputKey"].endswith("round-3")
