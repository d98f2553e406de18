"""The trigger form: typed fields in sections, hidden internal fields, and the flat submission ≡ the nested conf.

The equivalence is checked where it matters, on the JobSpec the run would submit: the form's submission and the
nested conf of the same run (the REST API's, VAMS's, the seed's wrapper) resolve to the same spec. Airflow's own
trigger-time validation is exercised through the serialized DAG, as the api-server runs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from isaaclab_pipeline import form
from isaaclab_pipeline.config import ConfigValidationError, apply_deployment
from isaaclab_pipeline.resolve import build_job_spec
from isaaclab_pipeline.settings import PipelineSettings

REPO = Path(__file__).resolve().parents[2]
GUIDE_CONFS = sorted((REPO / "examples" / "confs" / "user-guide").glob("*.json"))
JOB = "3f0c1a52-0d5e-5d1f-8a8e-1b2c3d4e5f60"
TASK = "Isaac-Custom-Cartpole-Direct"


@pytest.fixture(scope="module")
def serialized_params():
    """The DAG's Params as the api-server holds them: the DAG serialized and read back."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["isaac-lab-training"]
    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).params


def airflow_accepts(params: Any, conf: dict) -> None:
    """What the REST API runs before creating a run (SerializedDAG.create_dagrun)."""
    params.deep_merge(conf).validate()


def test_one_typed_field_per_guide_field_in_sections() -> None:
    params = form.dag_params()
    visible = {k: p for k, p in params.items() if not p.schema.get("const")}
    guide = {"mode", "task", "rlLibrary", "seed", "numEnvs", "maxIterations", "checkpointPath", "policyS3Uri",
             "policyPath", "resumeCheckpoint", "numEpisodes", "recordVideo", "numNodes", "inputS3AssetFilePath",
             "outputS3Path"}
    assert guide <= set(visible)
    for name, param in visible.items():
        assert param.schema["section"] and param.schema["title"], name
    # drop-downs
    assert params["mode"].schema["enum"] == ["train", "evaluate", "play"]
    assert params["rlLibrary"].schema["enum"] == ["rsl_rl", "skrl", "rl_games"]
    # numbers with bounds, a checkbox, text locations
    bounds = {n: (params[n].schema["minimum"], params[n].schema["maximum"])
              for n in ("numEnvs", "maxIterations", "numEpisodes", "numNodes", "seed")}
    assert bounds == {"numEnvs": (1, 65536), "maxIterations": (1, 100000), "numEpisodes": (1, 10000),
                      "numNodes": (1, 16), "seed": (0, 4294967295)}
    assert params["recordVideo"].schema["type"] == "boolean"
    for name in ("inputS3AssetFilePath", "outputS3Path", "checkpointPath", "policyS3Uri"):
        assert params[name].schema["type"] == ["string", "null"] and "pattern" in params[name].schema
    # the guide's defaults; numEnvs empty = the mode's default (4096 to train, 100 to evaluate)
    defaults = {n: params[n].value for n in guide}
    assert defaults == {"mode": "train", "task": "Isaac-Cartpole-v0", "rlLibrary": "rsl_rl", "seed": None,
                        "numEnvs": None, "maxIterations": 1500, "numEpisodes": 50, "recordVideo": False,
                        "numNodes": 1, "checkpointPath": None, "policyS3Uri": None, "policyPath": None,
                        "resumeCheckpoint": None, "inputS3AssetFilePath": None, "outputS3Path": None}
    assert list(dict.fromkeys(p.schema["section"] for p in visible.values()))[0] == form.SECTION_RUN


def test_experiment_fields_join_the_form_when_the_schema_has_them() -> None:
    params = form.dag_params()
    props = form.load_schema()["properties"]
    assert "overrides" in props["trainingConfig"]["properties"] and "sweep" in props
    assert form.fields()["overrides"] == ("trainingConfig", "overrides")
    assert params["overrides"].schema["section"] == form.SECTION_EXPERIMENTS
    assert params["overrides"].schema["items"]["type"] == "string"  # one override per line
    assert form.fields()["sweep"] == ("sweep",)
    assert params["sweep"].schema["type"] == ["object", "null"]


def test_task_suggestions_include_the_images_task_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    known = tmp_path / "known-tasks.json"
    known.write_text(json.dumps({"sources": {"isaaclab_tasks": ["Isaac-Velocity-Flat-Anymal-C", "Isaac-Ant"]},
                                 "aliases": {"Isaac-Ant-v0": "Isaac-Ant"}}))
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(known))
    examples = form.dag_params()["task"].schema["examples"]
    assert examples[:2] == ["Isaac-Custom-Cartpole-Direct", "Isaac-Ant-v0"]  # the schema's, then the guide's
    assert {"Isaac-Cartpole-v0", "Isaac-Velocity-Flat-Anymal-C", "Isaac-Ant"} <= set(examples)
    assert len(examples) == len(set(examples))
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(tmp_path / "absent.json"))
    assert "Isaac-Velocity-Flat-Anymal-C" not in form.dag_params()["task"].schema["examples"]


def test_internal_fields_are_hidden_but_still_validated(serialized_params: Any) -> None:
    params = form.dag_params()
    for name in ("vams", "workflowName", "parameters", "trainingConfig", "computeConfig"):
        assert params[name].schema["const"], name  # Airflow 3.3's form: a truthy const renders a hidden input
        assert name not in form.fields()
    # ...yet Airflow validates them with their real schema: VAMS's and the REST API's nested confs pass
    for path in GUIDE_CONFS:
        airflow_accepts(serialized_params, json.loads(path.read_text()))
    airflow_accepts(serialized_params, {"trainingConfig": {"task": TASK}, "vams": {"callback": True,
                                                                                   "executingUserName": "alice"}})
    airflow_accepts(serialized_params, form.form_submission(task=TASK, numEnvs=64))
    # and refuse a bad one at trigger time, naming the Param (the REST API's HTTP 400)
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="param trainingConfig: 0 is less than the minimum of 1"):
        airflow_accepts(serialized_params, {"trainingConfig": {"task": TASK, "numEnvs": 0}})
    with pytest.raises(ParamValidationError, match="param vams"):
        airflow_accepts(serialized_params, {"trainingConfig": {"task": TASK}, "vams": {"token": "x"}})
    with pytest.raises(ParamValidationError, match="param numEnvs: 0 is less than the minimum of 1"):
        airflow_accepts(serialized_params, form.form_submission(numEnvs=0))
    with pytest.raises(ParamValidationError, match="param mode"):
        airflow_accepts(serialized_params, form.form_submission(mode="fly"))


def _asset(tmp_path: Path) -> Path:
    asset = tmp_path / "asset"
    (asset / "checkpoints").mkdir(parents=True)
    (asset / "custom_cartpole.tar.gz").write_bytes(b"package")
    (asset / "checkpoints" / "model_300.pt").write_bytes(b"checkpoint")
    return asset


def _spec(conf: dict, tmp_path: Path) -> dict:
    settings = PipelineSettings(staging_uri=str(tmp_path / "staging"), default_output_uri=str(tmp_path / "out"),
                                cache_uri="")
    normalized = apply_deployment(form.validate_submission(conf), default_output_uri=settings.default_output_uri,
                                  max_nodes=settings.max_nodes)
    return build_job_spec(normalized, JOB, settings).to_dict()


CASES = {
    "train": (dict(task=TASK, seed=42, numEnvs=64, maxIterations=150),
              {"trainingConfig": {"mode": "train", "task": TASK, "rlLibrary": "rsl_rl", "seed": 42, "numEnvs": 64,
                                  "maxIterations": 150}, "computeConfig": {"numNodes": 1}}),
    "evaluate, guide style": (dict(mode="evaluate", task="Isaac-Cartpole-Direct-v0", seed=7,
                                   checkpointPath="checkpoints/model_300.pt", recordVideo=True),
                              {"trainingConfig": {"mode": "evaluate", "task": "Isaac-Cartpole-Direct-v0", "seed": 7,
                                                  "checkpointPath": "checkpoints/model_300.pt", "numEnvs": 100,
                                                  "numEpisodes": 50, "recordVideo": True, "rlLibrary": "rsl_rl"}}),
    "play, skrl": (dict(mode="play", task=TASK, rlLibrary="skrl", seed=3, policyPath="checkpoints/model_300.pt",
                        numEnvs=16),
                   {"trainingConfig": {"task": TASK, "mode": "play", "rlLibrary": "skrl", "seed": 3, "numEnvs": 16,
                                       "policyPath": "checkpoints/model_300.pt"}}),
    "resume, rl_games": (dict(task=TASK, rlLibrary="rl_games", seed=5, maxIterations=20,
                              resumeCheckpoint="checkpoints/model_300.pt"),
                         {"trainingConfig": {"task": TASK, "rlLibrary": "rl_games", "seed": 5, "maxIterations": 20,
                                             "resumeCheckpoint": "checkpoints/model_300.pt"}}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_form_and_nested_conf_give_the_same_job_spec(case: str, tmp_path: Path) -> None:
    asset = _asset(tmp_path)
    out = str(tmp_path / "outputs")
    filled, nested = CASES[case]
    submitted = form.form_submission(**filled, inputS3AssetFilePath=str(asset), outputS3Path=out)
    nested = {**nested, "inputS3AssetFilePath": str(asset), "outputS3Path": out}
    wrapped = {"workflowName": "isaac-lab-training", "parameters": nested}

    from_form = _spec(submitted, tmp_path)
    assert from_form == _spec(nested, tmp_path) == _spec(wrapped, tmp_path)
    assert from_form["envPackageUri"] == str(asset / "custom_cartpole.tar.gz")
    assert form.validate_submission(submitted) == form.validate_submission(nested)


def test_form_and_nested_agree_on_overrides_when_the_schema_has_them(tmp_path: Path) -> None:
    if "overrides" not in form.fields():
        pytest.skip("trainingConfig.overrides is not in the schema yet")
    overrides = ["agent.algorithm.learning_rate=3e-4"]
    submitted = form.form_submission(task=TASK, seed=1, overrides=overrides)
    nested = {"trainingConfig": {"task": TASK, "seed": 1, "overrides": overrides}}
    assert form.validate_submission(submitted) == form.validate_submission(nested)


def test_empty_fields_take_the_confs_defaults() -> None:
    conf = form.validate_submission(form.form_submission(mode="evaluate", task=TASK, seed=1, checkpointPath="c/m.pt",
                                               outputS3Path="", inputS3AssetFilePath=None))
    assert conf["trainingConfig"]["numEnvs"] == 100  # the evaluate default, not the train one
    assert "outputS3Path" not in conf and "inputS3AssetFilePath" not in conf
    assert form.validate_submission(form.form_submission(task=TASK, seed=1))["trainingConfig"]["numEnvs"] == 4096


def test_a_nested_conf_pasted_into_the_form_wins_over_untouched_fields() -> None:
    # the form's JSON view: its defaults (mode train...) beside a pasted nested conf (mode evaluate)
    pasted = {**form.form_submission(), "trainingConfig": {"mode": "evaluate", "task": TASK, "seed": 2,
                                                           "checkpointPath": "c/m.pt", "numEnvs": 8}}
    tc = form.validate_submission(pasted)["trainingConfig"]
    assert (tc["mode"], tc["task"], tc["numEnvs"]) == ("evaluate", TASK, 8)


def test_the_two_shapes_disagreeing_is_refused_naming_both() -> None:
    conf = {**form.form_submission(numEnvs=128), "trainingConfig": {"task": TASK, "numEnvs": 64}}
    with pytest.raises(ConfigValidationError, match=r"trainingConfig.numEnvs: 64 disagrees with the form field "
                                                    r"'numEnvs' \(128\)"):
        form.to_nested(conf)


def test_form_field_errors_name_the_conf_field() -> None:
    with pytest.raises(ConfigValidationError, match=r"trainingConfig.task: 'a b' is not allowed"):
        form.validate_submission(form.form_submission(task="a b"))
