"""The conf contract: defaults per mode, every problem listed with its field, wrapper form, Params."""

from __future__ import annotations

import pytest
from isaaclab_pipeline.config import ConfigValidationError, dag_params, job_uuid, load_schema, validate_conf

MINIMAL = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}, "outputS3Path": "s3://bucket/out"}


def problems(conf: dict) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        validate_conf(conf)
    return info.value.problems


def test_train_defaults() -> None:
    tc = validate_conf(MINIMAL)["trainingConfig"]
    assert tc == {"task": "Isaac-Custom-Cartpole-Direct", "mode": "train", "rlLibrary": "rsl_rl", "seed": 42,
                  "numEnvs": 4096, "maxIterations": 1500, "numEpisodes": 50, "recordVideo": False}


def test_evaluate_defaults_to_100_envs() -> None:
    conf = {**MINIMAL, "inputS3AssetFilePath": "s3://bucket/asset/",
            "trainingConfig": {"task": "T", "mode": "evaluate", "checkpointPath": "logs/model_10.pt"}}
    normalized = validate_conf(conf)
    assert normalized["trainingConfig"]["numEnvs"] == 100
    assert normalized["computeConfig"] == {"numNodes": 1}


def test_explicit_values_win_over_defaults() -> None:
    conf = {**MINIMAL, "trainingConfig": {"task": "T", "numEnvs": 64, "maxIterations": 150}}
    tc = validate_conf(conf)["trainingConfig"]
    assert (tc["numEnvs"], tc["maxIterations"]) == (64, 150)


def test_every_problem_is_listed_with_its_field() -> None:
    found = problems({
        "trainingConfig": {"task": "x; rm -rf /", "numenvs": 3, "numEnvs": 0, "maxIterations": 100001,
                           "checkpointPath": "../secret.pt", "rlLibrary": "sb3"},
        "outputS3Path": "relative/path",
        "surprise": 1,
    })
    text = "\n".join(found)
    assert len(found) == 8, text
    assert "trainingConfig.task: 'x; rm -rf /' is not allowed" in text
    assert "trainingConfig.numenvs: unknown key; did you mean 'numEnvs'?" in text
    assert "trainingConfig.numEnvs: 0 is out of range; use 1..65536" in text
    assert "trainingConfig.maxIterations: 100001 is out of range; use 1..100000" in text
    assert "trainingConfig.checkpointPath: '../secret.pt' is not allowed" in text
    assert "trainingConfig.rlLibrary: 'sb3' is not one of rsl_rl, skrl, rl_games" in text
    assert any(p.startswith("outputS3Path: 'relative/path' is not allowed") for p in found)
    assert any(p.startswith("surprise: unknown key") for p in found)


@pytest.mark.parametrize("path", ["/etc/passwd", "a/../../b.pt", "..", "ok/..\\x"])
def test_checkpoint_paths_cannot_escape_the_asset(path: str) -> None:
    conf = {**MINIMAL, "inputS3AssetFilePath": "s3://b/a/",
            "trainingConfig": {"task": "T", "mode": "evaluate", "checkpointPath": path}}
    assert any(p.startswith("trainingConfig.checkpointPath:") for p in problems(conf))


@pytest.mark.parametrize("task", ["Isaac-Ant-v0", "Isaac-Custom-Cartpole-Direct", "IsaacContrib-Lift-Cube-Franka"])
def test_real_task_ids_pass(task: str) -> None:
    assert validate_conf({**MINIMAL, "trainingConfig": {"task": task}})["trainingConfig"]["task"] == task


@pytest.mark.parametrize("task", ["a b", "$(id)", "t`x`", "t|y", "-rf", "t>out"])
def test_shell_metacharacters_are_refused(task: str) -> None:
    assert any(p.startswith("trainingConfig.task:") for p in problems({**MINIMAL, "trainingConfig": {"task": task}}))


def test_seed_workflow_wrapper_is_accepted() -> None:
    wrapped = {"workflowName": "isaac-lab-training", "parameters": MINIMAL}
    assert validate_conf(wrapped) == validate_conf(MINIMAL)


def test_wrapper_for_another_workflow_is_refused() -> None:
    assert problems({"workflowName": "other", "parameters": MINIMAL}) == [
        "workflowName: is 'other'; this pipeline is 'isaac-lab-training'"]


def test_form_nulls_are_ignored() -> None:
    """The UI form sends every Param; the unused ones arrive as null."""
    conf = {**MINIMAL, "computeConfig": None, "workflowName": None, "parameters": None,
            "inputS3AssetFilePath": None}
    assert validate_conf(conf)["computeConfig"] == {"numNodes": 1}


def test_modes_need_their_inputs() -> None:
    assert problems({**MINIMAL, "trainingConfig": {"task": "T", "mode": "play"}}) == [
        "trainingConfig.policyPath: play needs a policy; set policyPath"]
    found = problems({**MINIMAL, "trainingConfig": {"task": "T", "mode": "evaluate", "checkpointPath": "m.pt"}})
    assert found[0].startswith("trainingConfig.checkpointPath: a relative path needs inputS3AssetFilePath")


def test_missing_required_fields_are_named() -> None:
    assert problems({"trainingConfig": {}}) == [
        "(conf): 'outputS3Path' is a required property; add it",
        "trainingConfig: 'task' is a required property; add it",
    ]


def test_job_uuid_is_stable_per_run() -> None:
    assert job_uuid("isaac-lab-training", "manual__1") == job_uuid("isaac-lab-training", "manual__1")
    assert job_uuid("isaac-lab-training", "manual__1") != job_uuid("isaac-lab-training", "manual__2")


def test_params_carry_the_schema_bounds() -> None:
    """The trigger form is derived from the schema: same bounds, so the API refuses what validate would."""
    params = dag_params()
    schema = load_schema()
    assert set(params) == set(schema["properties"]) | {"workflowName", "parameters"}
    num_envs = params["trainingConfig"].schema["properties"]["numEnvs"]
    assert (num_envs["minimum"], num_envs["maximum"]) == (1, 65536)
    assert "x-defaultByMode" not in num_envs
    with pytest.raises(ValueError, match="less than the minimum"):
        params["trainingConfig"].resolve({"task": "T", "numEnvs": 0})
    assert params["trainingConfig"].resolve(None) is None


def test_configuration_doc_matches_the_schema() -> None:
    """docs/configuration.md carries the generated field table; regenerate it when the schema changes."""
    from pathlib import Path

    from isaaclab_pipeline.schema_docs import render_fields

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert render_fields() in doc, "run: python -m isaaclab_pipeline.schema_docs and paste into docs/configuration.md"
