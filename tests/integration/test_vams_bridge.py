"""The VAMS bridge Lambda: MWAA's invoke_rest_api through botocore's Stubber (moto has no MWAA), SSM, S3 and a
real waiting Step Functions execution on a moto server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from vams_aws import PipelineExecution, moto_server, recorded_calls, start_recording

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "vams_bridge"))
from vams_bridge.airflow_api import MwaaApi  # noqa: E402
from vams_bridge.handler import trigger  # noqa: E402
from vams_bridge.payload import dag_run_id  # noqa: E402
from vams_bridge.token_store import DEFAULT_PREFIX, TokenStore  # noqa: E402

DAG_PATH = "/dags/isaac-lab-training/dagRuns"


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        boto3.client("s3").create_bucket(Bucket="vams-assets")
        yield url


@pytest.fixture()
def execution(moto_url: str) -> PipelineExecution:
    return PipelineExecution()


def vams_event(token: str | None, **extra: Any) -> dict[str, Any]:
    body = {"inputS3AssetFilePath": "s3://vams-assets/cartpole/custom_cartpole.tar.gz",
            "outputS3AssetFilesPath": "s3://vams-assets/cartpole/outputs/",
            "outputS3AssetPreviewPath": "s3://vams-assets/cartpole/preview/",
            "executingUserName": "alice",
            "inputParameters": json.dumps({"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct",
                                                              "numEnvs": 64}}),
            **extra}
    if token:
        body["TaskToken"] = token
    return {"body": json.dumps(body)}  # VAMS may send the body as a JSON string


def mwaa(status: int, answer: Any, expect_body: Any = ANY) -> tuple[MwaaApi, Stubber]:
    client = boto3.client("mwaa", region_name="us-east-1")
    stub = Stubber(client)
    expected = {"Name": "vams-env", "Path": DAG_PATH, "Method": "POST", "Body": expect_body}
    if status < 300:
        stub.add_response("invoke_rest_api", {"RestApiStatusCode": status, "RestApiResponse": answer}, expected)
    else:
        code = "RestApiClientException" if status < 500 else "RestApiServerException"
        stub.add_client_error("invoke_rest_api", code, "Airflow refused", http_status_code=status,
                              expected_params=expected,
                              modeled_fields={"RestApiStatusCode": status, "RestApiResponse": answer})
    stub.activate()
    return MwaaApi(client, "vams-env"), stub


def call(event: dict, api: MwaaApi, **kw: Any) -> dict[str, Any]:
    return trigger(event, api=api, ssm=boto3.client("ssm"), sfn=boto3.client("stepfunctions"),
                   s3=boto3.client("s3"), **kw)


def test_good_payload_triggers_the_dag_and_keeps_the_token_out_of_the_conf(execution: PipelineExecution) -> None:
    run_id = dag_run_id(execution.token)
    expected_body = {"logical_date": None, "dag_run_id": run_id, "note": ANY, "conf": {
        "trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 64},
        "inputS3AssetFilePath": "s3://vams-assets/cartpole/custom_cartpole.tar.gz",
        "outputS3Path": "s3://vams-assets/cartpole/outputs/",
        "vams": {"callback": True, "executingUserName": "alice",
                 "outputs": {"previews": "s3://vams-assets/cartpole/preview/"}}}}
    api, stub = mwaa(200, {"dag_run_id": run_id, "state": "queued"}, expected_body)

    result = call(vams_event(execution.token), api)

    stub.assert_no_pending_responses()
    assert result["statusCode"] == 200 and json.loads(result["body"])["dagRunId"] == run_id
    assert execution.token not in json.dumps(result)
    assert TokenStore(boto3.client("ssm")).get(run_id) == execution.token  # waiting for the DAG
    assert boto3.client("ssm").get_parameter(Name=f"{DEFAULT_PREFIX}/{run_id}/task-token")["Parameter"]["Type"] \
        == "SecureString"
    assert execution.status() == "RUNNING"


def test_refused_conf_fails_the_token_at_once_with_airflows_reason(moto_url: str,
                                                                  execution: PipelineExecution) -> None:
    detail = "Invalid input for param trainingConfig: 0 is less than the minimum of 1\n\nFailed validating..."
    api, _ = mwaa(400, {"detail": detail})
    start_recording(moto_url)

    result = call(vams_event(execution.token), api)

    assert result["statusCode"] == 400
    assert execution.wait_done()["status"] == "FAILED"
    assert execution.failure()["error"] == "AirflowRefused400"
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["cause"].startswith("isaac-lab-training refused the conf (HTTP 400): Invalid input for param "
                                    "trainingConfig: 0 is less than the minimum of 1")
    assert len(sent["cause"]) <= 256
    run_id = dag_run_id(execution.token)
    assert TokenStore(boto3.client("ssm")).get(run_id) is None  # nothing left to report
    # a later DAG-side report (had the run existed) finds nothing to send: the failure went out once
    from isaaclab_pipeline.vams import callbacks

    assert callbacks.report_failure(run_id, "validate_config", "late") is False
    assert len(recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")) == 1


def test_server_error_fails_the_token_with_a_readable_cause(moto_url: str, execution: PipelineExecution) -> None:
    api, _ = mwaa(500, {"detail": "database is locked " * 40})
    start_recording(moto_url)
    assert call(vams_event(execution.token), api)["statusCode"] == 500
    assert execution.wait_done()["status"] == "FAILED"
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["cause"].startswith("isaac-lab-training failed to create the run (HTTP 500): database is locked")
    assert len(sent["cause"]) == 256 and sent["error"] == "AirflowRefused500"


def test_bad_payload_fails_the_token_before_any_trigger(moto_url: str, execution: PipelineExecution) -> None:
    client = boto3.client("mwaa", region_name="us-east-1")
    stub = Stubber(client)  # no response queued: any call to MWAA would raise
    stub.activate()
    start_recording(moto_url)
    event = vams_event(execution.token, outputS3AssetFilesPath="", inputParameters="{not json")
    result = call(event, MwaaApi(client, "vams-env"))
    assert result["statusCode"] == 400
    assert execution.wait_done()["status"] == "FAILED"
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["error"] == "VamsPayloadInvalid"
    assert "outputS3AssetFilesPath: missing" in sent["cause"]


def test_retried_lambda_finds_its_run(execution: PipelineExecution) -> None:
    api, _ = mwaa(409, {"detail": "DAG Run already exists"})
    result = call(vams_event(execution.token), api)
    assert result["statusCode"] == 200
    assert execution.status() == "RUNNING"  # the first attempt's run will report


def test_config_precedence_run_over_asset_over_defaults(execution: PipelineExecution) -> None:
    s3 = boto3.client("s3")
    s3.put_object(Bucket="vams-assets", Key="cartpole/train.json", Body=json.dumps({
        "workflowName": "isaac-lab-training",
        "parameters": {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 256, "seed": 7,
                                          "maxIterations": 300}, "computeConfig": {"numNodes": 2}}}))
    s3.put_object(Bucket="vams-assets", Key="runs/r1.json",
                  Body=json.dumps({"trainingConfig": {"maxIterations": 50, "numEnvs": None}}))
    captured: dict[str, Any] = {}

    class Capture:
        def call(self, method: str, path: str, body: dict | None = None):
            from vams_bridge.airflow_api import ApiResponse

            captured.update(body or {})
            return ApiResponse(200, {})

    event = vams_event(execution.token, inputS3AssetFilePath="s3://vams-assets/cartpole/train.json",
                       inputConfigurationS3Location="s3://vams-assets/runs/r1.json",
                       inputParameters={"trainingConfig": {"seed": 11, "rlLibrary": ""}})
    defaults = {"trainingConfig": {"rlLibrary": "skrl", "numEnvs": 4096, "seed": 1}, "computeConfig": {"numNodes": 1}}
    assert call(event, Capture(), defaults=defaults)["statusCode"] == 200
    conf = captured["conf"]
    assert conf["trainingConfig"] == {
        "task": "Isaac-Custom-Cartpole-Direct",
        "rlLibrary": "skrl",      # blank in the run config falls through to the defaults
        "numEnvs": 256,           # null in the run config falls through to the asset config
        "seed": 11,               # inputParameters over the asset config and the defaults
        "maxIterations": 50,      # the run's configuration file over the asset config
    }
    assert conf["computeConfig"] == {"numNodes": 2}
    assert conf["inputS3AssetFilePath"] == "s3://vams-assets/cartpole/"  # the config's folder is the asset
    assert execution.token not in json.dumps(captured)


def stage_vams26(execution: PipelineExecution, config: bytes | None) -> dict[str, Any]:
    """A VAMS 2.6 call (tests/vams_contract.py): manifest and configuration written where VAMS writes them."""
    import vams_contract as vc

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="vams-run-io")
    body = vc.task_body("vams-run-io", execution.token)
    manifest = vc.manifest([vc.input_file("vams-assets", "a1", "/custom_cartpole.tar.gz")], "vams-run-io")
    s3.put_object(Bucket="vams-run-io", Key=f"{vc.input_prefix()}manifest.json", Body=json.dumps(manifest))
    if config is not None:
        s3.put_object(Bucket="vams-run-io", Key=f"{vc.input_prefix()}config.json", Body=config)
    else:
        s3.delete_object(Bucket="vams-run-io", Key=f"{vc.input_prefix()}config.json")
    return {"body": body}


def test_a_vams_26_call_is_read_from_its_manifest_and_configuration(execution: PipelineExecution) -> None:
    import vams_contract as vc

    event = stage_vams26(execution, vc.configuration(task="Isaac-Custom-Cartpole-Direct", numEnvs=64))
    run_id = dag_run_id(execution.token)
    expected = {"logical_date": None, "dag_run_id": run_id, "note": ANY, "conf": {
        "trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 64}, "computeConfig": {"numNodes": 1},
        "inputS3AssetFilePath": "s3://vams-assets/a1/custom_cartpole.tar.gz",
        "outputS3Path": f"s3://vams-run-io/{vc.output_prefix('files')}",
        "vams": {"callback": True, "executingUserName": "alice", "workflowDatabaseId": "GLOBAL",
                 "workflowId": "isaac-lab-training", "workflowExecutionId": vc.EXECUTION_ID,
                 "databaseId": "robotics", "assetId": "a1", "pipelineExecutionId": vc.PIPELINE_EXECUTION_ID,
                 "outputs": {k: f"s3://vams-run-io/{vc.output_prefix(k)}" for k in ("previews", "metadata",
                                                                                  "results")},
                 "orchestration": {"busArn": vc.BUS_ARN, "eventPrefix": vc.EVENT_PREFIX}}}}
    captured: dict[str, Any] = {}

    class Capture:
        def call(self, method: str, path: str, body: dict | None = None):
            from vams_bridge.airflow_api import ApiResponse

            captured.update(body or {})
            return ApiResponse(200, {})

    assert call(event, Capture())["statusCode"] == 200
    assert captured == expected
    assert f"workflowExecutionId {vc.EXECUTION_ID}" in captured["note"]
    assert execution.token not in json.dumps(captured) and execution.status() == "RUNNING"


def test_a_missing_configuration_file_fails_the_token_at_once_naming_it(moto_url: str,
                                                                       execution: PipelineExecution) -> None:
    import vams_contract as vc

    client = boto3.client("mwaa", region_name="us-east-1")
    Stubber(client).activate()  # no response queued: the bridge must not trigger
    event = stage_vams26(execution, None)
    start_recording(moto_url)
    result = call(event, MwaaApi(client, "vams-env"))
    assert result["statusCode"] == 400
    assert execution.wait_done()["status"] == "FAILED"
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["error"] == "VamsPayloadInvalid"
    assert sent["cause"] == (f"isaac-lab-training not triggered: inputConfigurationS3Location: cannot read "
                             f"s3://vams-run-io/{vc.input_prefix()}config.json (NoSuchKey)")
    assert TokenStore(boto3.client("ssm")).get(dag_run_id(execution.token)) is None
