"""The conf contract: defaults per mode, every problem listed with its field, wrapper form, Params."""

from __future__ import annotations

import pytest
from isaaclab_pipeline.config import ConfigValidationError, job_uuid, validate_conf

MINIMAL = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}, "outputS3Path": "s3://bucket/out"}


def problems(conf: dict) -> list[str]:
    with pytest.raises(ConfigValidationError) as info:
        validate_conf(conf)
    return info.value.problems


def test_train_defaults() -> None:
    tc = validate_conf(MINIMAL)["trainingConfig"]
    seed = tc.pop("seed")  # drawn when not given, then recorded
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert tc == {"task": "Isaac-Custom-Cartpole-Direct", "mode": "train", "rlLibrary": "rsl_rl",
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
    conf = {**MINIMAL, "trainingConfig": {**MINIMAL["trainingConfig"], "seed": 7}}
    wrapped = {"workflowName": "isaac-lab-training", "parameters": conf}
    assert validate_conf(wrapped) == validate_conf(conf)


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
    # the user guide's Option 1 (a relative checkpointPath, no asset: VAMS adds it) passes; resolve checks it
    conf = validate_conf({**MINIMAL, "trainingConfig": {"task": "T", "mode": "evaluate", "checkpointPath": "m.pt"}})
    assert conf["trainingConfig"]["checkpointPath"] == "m.pt"


def test_wrong_types_are_named_with_what_they_must_be() -> None:
    assert problems({"trainingConfig": "train", "computeConfig": []}) == [
        "computeConfig: [] is an array; it must be an object",
        "trainingConfig: 'train' is a string; it must be an object",
    ]


def test_job_uuid_is_stable_per_run() -> None:
    assert job_uuid("isaac-lab-training", "manual__1") == job_uuid("isaac-lab-training", "manual__1")
    assert job_uuid("isaac-lab-training", "manual__1") != job_uuid("isaac-lab-training", "manual__2")


def test_configuration_doc_matches_the_schema() -> None:
    """docs/configuration.md carries the generated field table; regenerate it when the schema changes."""
    from pathlib import Path

    from isaaclab_tools.schema_docs import render_fields

    doc = (Path(__file__).resolve().parents[2] / "docs" / "configuration.md").read_text()
    assert render_fields() in doc, "run: python -m isaaclab_tools.schema_docs --write docs/configuration.md"


# Robustness: whatever JSON arrives, only ConfigValidationError, every problem named by field


@pytest.mark.parametrize("raw", [[], [MINIMAL], "conf", "", 0, 1.5, True, None])
def test_a_conf_that_is_not_an_object_is_refused(raw: object) -> None:
    [problem] = problems(raw)  # type: ignore[arg-type]
    assert problem.startswith("(conf): must be a JSON object, got ")


@pytest.mark.parametrize(("conf", "field"), [
    ({"trainingConfig": []}, "trainingConfig"),
    ({"trainingConfig": {"task": "T", "mode": ["train"]}}, "trainingConfig.mode"),
    ({"trainingConfig": {"task": "T", "mode": {"a": 1}}}, "trainingConfig.mode"),
    ({"trainingConfig": {"task": {"x": [1, {"y": None}]}}}, "trainingConfig.task"),
    ({"trainingConfig": {"task": "T"}, "computeConfig": "big"}, "computeConfig"),
    ({"trainingConfig": {"task": "T", "numEnvs": True}}, "trainingConfig.numEnvs"),
    ({"trainingConfig": {"task": "T", "recordVideo": 1}}, "trainingConfig.recordVideo"),
    ({"trainingConfig": {"task": "T", "numEnvs": float("nan")}}, "trainingConfig.numEnvs"),
    ({"trainingConfig": {"task": "T"}, "vams": ["x" * 10_000]}, "vams"),
    ({"workflowName": ["isaac-lab-training"], "parameters": MINIMAL}, "workflowName"),
    ({"workflowName": "isaac-lab-training", "parameters": "{}"}, "parameters"),
])
def test_junk_is_refused_by_field(conf: dict, field: str) -> None:
    found = problems(conf)
    assert any(p.startswith(f"{field}: ") for p in found), found
    assert all(len(p) < 600 for p in found)


def test_deep_nesting_is_refused() -> None:
    junk: object = "x"
    for _ in range(5000):
        junk = [junk]
    assert problems({"trainingConfig": {"task": "T"}, "vams": junk})


@pytest.mark.parametrize(("key", "value", "fix"), [
    ("numEnvs", 64.0, "write 64"), ("maxIterations", 1e3, "write 1000"), ("seed", 4.0, "write 4"),
    ("numEpisodes", 2.5, "use a whole number"),
])
def test_integers_written_as_floats_are_refused(key: str, value: float, fix: str) -> None:
    """JSON Schema calls 64.0 an integer; Isaac Lab's CLI refuses --num_envs 64.0 after the GPU has started."""
    [problem] = problems({**MINIMAL, "trainingConfig": {"task": "T", key: value}})
    assert problem.startswith(f"trainingConfig.{key}: {value!r} is not an integer") and fix in problem


def test_compute_config_integers_too() -> None:
    [problem] = problems({**MINIMAL, "computeConfig": {"numNodes": 2.0}})
    assert problem.startswith("computeConfig.numNodes: 2.0 is not an integer")


@pytest.mark.parametrize(("conf", "field"), [
    ({"trainingConfig": {"task": "Isaac-Ant-v0\n"}}, "trainingConfig.task"),
    ({"trainingConfig": {"task": "Isaac-Ant\r"}}, "trainingConfig.task"),
    ({"inputS3AssetFilePath": "s3://b/a/", "trainingConfig": {"task": "T", "mode": "evaluate",
                                                              "checkpointPath": "ok.pt\n../../etc/passwd"}},
     "trainingConfig.checkpointPath"),
    ({"inputS3AssetFilePath": "s3://bucket/a\x00b"}, "inputS3AssetFilePath"),
    ({"vams": {"executingUserName": "alice\x1b[31m"}}, "vams.executingUserName"),
])
def test_control_characters_are_refused(conf: dict, field: str) -> None:
    full = {**MINIMAL, **conf, "trainingConfig": conf.get("trainingConfig", MINIMAL["trainingConfig"])}
    found = problems(full)
    assert any(p.startswith(f"{field}: ") and "control character" in p for p in found), found


@pytest.mark.parametrize(("field", "uri", "says"), [
    ("outputS3Path", "s3:///x", "no valid bucket name"),
    ("outputS3Path", "s3://B/x", "no valid bucket name"),
    ("outputS3Path", "s3://bucket//x", "empty, '.' or '..' part"),
    ("outputS3Path", "s3://bucket/a/../b", "empty, '.' or '..' part"),
    ("outputS3Path", "file://otherhost/x", "names host"),
    ("outputS3Path", "/opt/../etc", "'..' part"),
    ("inputS3AssetFilePath", "s3://ab/x.tar.gz", "no valid bucket name"),
])
def test_malformed_uris_are_refused(field: str, uri: str, says: str) -> None:
    found = problems({**MINIMAL, field: uri})
    assert any(p.startswith(f"{field}: ") and says in p for p in found), found


def test_good_uris_pass() -> None:
    for uri in ("s3://my-outputs/isaac-lab/", "s3://my.bucket-1", "file:///tmp/out", "file://localhost/tmp/o", "/o"):
        assert validate_conf({**MINIMAL, "outputS3Path": uri})["outputS3Path"] == uri


# The URI policy: what the deployment allows (checked in resolve_inputs, where the backend is known)


def test_batch_refuses_local_paths() -> None:
    from isaaclab_pipeline.config import uri_policy_problems

    conf = validate_conf({**MINIMAL, "inputS3AssetFilePath": "file:///etc/", "outputS3Path": "/opt/airflow/dags"})
    found = uri_policy_problems(conf, "batch", ["s3://bucket/"])
    assert [p.split(":")[0] for p in found] == ["inputS3AssetFilePath", "outputS3Path"]
    assert all("only s3:// URIs are allowed" in p for p in found)
    assert uri_policy_problems(conf, "local", []) == []  # the laptop: its own disk


def test_batch_needs_the_allow_list_and_keeps_to_it() -> None:
    from isaaclab_pipeline.config import uri_policy_problems

    conf = validate_conf({**MINIMAL, "inputS3AssetFilePath": "s3://assets/team-a/pkg.tar.gz",
                          "outputS3Path": "s3://outputs/team-a", "trainingConfig": {
                              "task": "T", "mode": "evaluate", "policyS3Uri": "s3://other/model.pt"}})
    assert all("isaaclab_allowed_uri_prefixes" in p for p in uri_policy_problems(conf, "batch", []))
    found = uri_policy_problems(conf, "batch", ["s3://assets/team-a/", "s3://outputs/team-a"])
    assert found == [p for p in found if p.startswith("trainingConfig.policyS3Uri: ")] and len(found) == 1
    # a prefix is a folder: s3://outputs/team is not a prefix of s3://outputs/team-a
    assert uri_policy_problems({"outputS3Path": "s3://outputs/team-a"}, "batch", ["s3://outputs/team"])
    assert uri_policy_problems({"outputS3Path": "s3://outputs/team"}, "batch", ["s3://outputs/team"]) == []
    # the local backend applies the list to s3:// URIs when one is set
    assert uri_policy_problems(conf, "local", ["s3://assets/"]) and not uri_policy_problems(conf, "local", [])
