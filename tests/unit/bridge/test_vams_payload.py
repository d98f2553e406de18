"""The VAMS bridge's payload handling: body decoding, VAMS's config precedence, run ids, the trigger body."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "vams_bridge"))
from vams_bridge.airflow_api import ApiResponse  # noqa: E402
from vams_bridge.handler import clip, refusal_cause  # noqa: E402
from vams_bridge.payload import (  # noqa: E402
    BridgeInputError,
    build_conf,
    dag_run_id,
    merge,
    parse_body,
    task_token,
    trigger_body,
)

TOKEN = "AAAAKgAAAAIAAAAAAAAAAQ-secret-task-token"
BODY = {"TaskToken": TOKEN, "inputS3AssetFilePath": "s3://a/asset/pkg.tar.gz",
        "outputS3AssetFilesPath": "s3://a/asset/out/", "executingUserName": "bob"}


def no_files(uri: str) -> dict:
    raise AssertionError(f"unexpected read of {uri}")


def test_body_as_object_string_or_bare() -> None:
    assert parse_body({"body": BODY}) == BODY
    assert parse_body({"body": json.dumps(BODY)}) == BODY
    assert parse_body(BODY) == BODY
    with pytest.raises(BridgeInputError, match="body: not valid JSON"):
        parse_body({"body": "{oops"})
    with pytest.raises(BridgeInputError, match="body: expected a JSON object, got list"):
        parse_body({"body": "[1]"})


def test_merge_lets_null_and_blank_fall_through() -> None:
    low = {"trainingConfig": {"numEnvs": 64, "rlLibrary": "skrl", "seed": 1}, "outputS3Path": "s3://x"}
    high = {"trainingConfig": {"numEnvs": None, "rlLibrary": "  ", "seed": 2, "task": "T"}, "outputS3Path": ""}
    assert merge(low, high) == {"trainingConfig": {"numEnvs": 64, "rlLibrary": "skrl", "seed": 2, "task": "T"},
                                "outputS3Path": "s3://x"}


def test_conf_carries_paths_and_callback_flag_never_the_token() -> None:
    body = {**BODY, "inputParameters": json.dumps({"workflowName": "isaac-lab-training", "parameters": {
        "trainingConfig": {"task": "T"}, "outputS3Path": "s3://elsewhere/", "TaskToken": TOKEN}})}
    conf = build_conf(body, no_files)
    assert conf == {"trainingConfig": {"task": "T"}, "inputS3AssetFilePath": "s3://a/asset/pkg.tar.gz",
                    "outputS3Path": "s3://a/asset/out/",  # VAMS ingests from here, so it wins
                    "vams": {"callback": True, "executingUserName": "bob"}}
    assert TOKEN not in json.dumps(conf)


def test_without_a_token_vams_does_not_wait() -> None:
    body = {k: v for k, v in BODY.items() if k != "TaskToken"}
    assert task_token(body) is None
    assert build_conf(body, no_files)["vams"] == {"callback": False, "executingUserName": "bob"}
    assert dag_run_id(None).startswith("vams__") and dag_run_id(None) != dag_run_id(None)


def test_run_id_is_stable_per_token_and_does_not_reveal_it() -> None:
    assert dag_run_id(TOKEN) == dag_run_id(TOKEN) != dag_run_id(TOKEN + "x")
    assert TOKEN not in dag_run_id(TOKEN) and len(dag_run_id(TOKEN)) == len("vams__") + 32


def test_payload_problems_name_the_field() -> None:
    with pytest.raises(BridgeInputError, match="outputS3AssetFilesPath: missing"):
        build_conf({**BODY, "outputS3AssetFilesPath": " "}, no_files)
    with pytest.raises(BridgeInputError, match="inputParameters: not valid JSON"):
        build_conf({**BODY, "inputParameters": "{"}, no_files)
    with pytest.raises(BridgeInputError, match="inputParameters: expected a JSON object, got int"):
        build_conf({**BODY, "inputParameters": "3"}, no_files)


def test_trigger_body_is_what_airflow_3_accepts() -> None:
    body = trigger_body("vams__1", {"a": 1}, "note")
    assert body == {"logical_date": None, "dag_run_id": "vams__1", "conf": {"a": 1}, "note": "note"}
    assert set(trigger_body("r", {})) == {"logical_date", "dag_run_id", "conf"}  # strict model: nothing else


def test_refusal_cause_fits_step_functions() -> None:
    cause = refusal_cause("isaac-lab-training", ApiResponse(400, {"detail": [{"msg": "x" * 300}]}))
    assert len(cause) == 256 and cause.startswith("isaac-lab-training refused the conf (HTTP 400): xxx")
    assert clip("a\n  b") == "a b"


def test_evaluation_headline_numbers_reach_vams() -> None:
    """Evaluate and play runs send return mean/std, length and success rate, as train runs send rewards."""
    from isaaclab_pipeline.vams.callbacks import headline_metrics

    summary = {"episodes": 50, "return": {"mean": 6.9, "std": 0.04, "min": 6.8, "max": 7.0},
               "length": {"mean": 420.0, "std": 0.0, "min": 420, "max": 420}, "successRate": 0.96, "mode": "evaluate"}
    assert headline_metrics(summary) == {"episodes": 50, "returnMean": 6.9, "returnStd": 0.04,
                                         "episodeLengthMean": 420.0, "successRate": 0.96}
