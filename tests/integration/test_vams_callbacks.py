"""The DAG-side VAMS callbacks against a moto server: a real waiting execution hears each outcome once."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from isaaclab_pipeline.vams import callbacks
from isaaclab_pipeline.vams.token_store import DEFAULT_PREFIX, TokenStore, token_parameter
from vams_aws import PipelineExecution, moto_server, recorded_calls, start_recording

VAMS_CONF = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}, "outputS3Path": "s3://out/x",
             "vams": {"callback": True, "executingUserName": "alice"}}


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


@pytest.fixture()
def execution(moto_url: str) -> PipelineExecution:
    return PipelineExecution()


def store() -> TokenStore:
    return TokenStore(boto3.client("ssm"), DEFAULT_PREFIX)


def context(run_id: str, conf: dict, task_id: str = "resolve_inputs", exc: Exception | None = None) -> dict:
    return {"run_id": run_id, "dag_run": SimpleNamespace(run_id=run_id, conf=conf),
            "ti": SimpleNamespace(task_id=task_id), "exception": exc,
            "dag": SimpleNamespace(dag_id="isaac-lab-training"), "reason": "task_failure"}


def test_task_failure_then_dag_failure_sends_one_failure(moto_url: str, execution: PipelineExecution) -> None:
    run_id = "vams__task-then-dag"
    store().put(run_id, execution.token)
    start_recording(moto_url)

    callbacks.on_task_failure(context(run_id, VAMS_CONF, "resolve_inputs",
                                      FileNotFoundError("no env package under s3://assets/a/ (" + "x" * 400 + ")")))
    callbacks.on_dag_failure(context(run_id, VAMS_CONF, "resolve_inputs"))  # the backstop finds it reported
    callbacks.on_task_failure(context(run_id, VAMS_CONF, "resolve_inputs", RuntimeError("again")))

    sent = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert len(sent) == 1
    assert execution.wait_done()["status"] == "FAILED"
    assert execution.failure()["error"] == "IsaacLabTraining.resolve_inputsFailed"
    detail = sent[0]  # moto's history keeps the error only; the request shows the cause
    assert detail["cause"].startswith(
        "isaac-lab-training step resolve_inputs failed: FileNotFoundError: no env package")
    assert len(detail["cause"]) <= 256 and detail["cause"].endswith("…")
    # the token is gone from the store, and so is the claim
    ssm = boto3.client("ssm")
    assert ssm.get_parameters_by_path(Path=f"{DEFAULT_PREFIX}/{run_id}", Recursive=True)["Parameters"] == []


def test_dag_failure_alone_reports_the_failed_step(moto_url: str, execution: PipelineExecution) -> None:
    run_id = "vams__dag-only"
    store().put(run_id, execution.token)
    start_recording(moto_url)
    callbacks.on_dag_failure(context(run_id, {"parameters": VAMS_CONF}, "wait_for_job"))  # wrapper form too
    assert execution.wait_done()["status"] == "FAILED"
    assert execution.failure()["error"] == "IsaacLabTraining.wait_for_jobFailed"
    assert callbacks.report_failure(run_id, "wait_for_job", "again") is False
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["cause"] == "isaac-lab-training step wait_for_job failed: the DAG run failed (task_failure)"


def test_success_output_carries_location_uuid_and_metrics(moto_url: str, execution: PipelineExecution,
                                                         tmp_path) -> None:
    from isaaclab_pipeline.config import job_uuid

    run_id = "vams__success"
    conf = {**VAMS_CONF, "outputS3Path": str(tmp_path)}
    out = tmp_path / job_uuid("isaac-lab-training", run_id)
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({
        "steps": 5, "best_mean_reward": {"value": 3.5, "step": 3},
        "tags": {"Train/mean_reward": {"last": 3.0, "last_step": 4, "min": 0, "max": 3.5, "count": 5},
                 "Train/mean_episode_length": {"last": 120.0, "last_step": 4, "min": 9, "max": 120, "count": 5}}}))
    store().put(run_id, execution.token)

    callbacks.on_dag_success(context(run_id, conf, "publish_outputs"))
    callbacks.on_dag_failure(context(run_id, conf, "publish_outputs"))  # too late: success was sent

    desc = execution.wait_done()
    assert desc["status"] == "SUCCEEDED"
    output = json.loads(desc["output"])
    assert output["status"] == "SUCCEEDED" and output["dagRunId"] == run_id
    assert output["jobId"] == out.name and output["outputS3Path"] == f"{out}/"
    assert output["metrics"] == {"bestMeanReward": 3.5, "bestMeanRewardStep": 3, "lastMeanReward": 3.0,
                                 "lastEpisodeLength": 120.0, "lastStep": 4, "iterations": 5}
    assert execution.token not in desc["output"]


def test_heartbeat_is_rate_limited_and_keeps_the_execution_waiting(moto_url: str, execution: PipelineExecution,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    run_id = "vams__heartbeat"
    store().put(run_id, execution.token)
    start_recording(moto_url)
    ctx = context(run_id, VAMS_CONF, "wait_for_job")
    assert callbacks.on_job_progress(ctx, {"iteration": 1}) is True
    assert callbacks.on_job_progress(ctx, {"iteration": 2}) is False  # within 5 minutes of the last one
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_VAMS_HEARTBEAT_MINUTES", "0")
    assert callbacks.on_job_progress(ctx, {"iteration": 3}) is True
    assert len(recorded_calls(moto_url, "AWSStepFunctions.SendTaskHeartbeat")) == 2
    assert execution.status() == "RUNNING"
    # after the final report there is no token: heartbeats stop quietly
    assert callbacks.report_failure(run_id, "wait_for_job", "killed") is True
    assert callbacks.on_job_progress(ctx, {"iteration": 4}) is False


def test_runs_not_started_by_vams_touch_no_aws(moto_url: str, execution: PipelineExecution) -> None:
    start_recording(moto_url)
    plain = {k: v for k, v in VAMS_CONF.items() if k != "vams"}
    callbacks.on_task_failure(context("manual__1", plain, "validate_config", ValueError("bad")))
    callbacks.on_dag_failure(context("manual__1", plain))
    callbacks.on_dag_success(context("manual__1", plain))
    assert callbacks.on_job_progress(context("manual__1", plain)) is False
    assert recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure") == []
    assert recorded_calls(moto_url, "AmazonSSM.GetParameter") == []


def test_a_dead_token_is_dropped_without_raising(moto_url: str, execution: PipelineExecution) -> None:
    run_id = "vams__dead"
    store().put(run_id, "not-a-token-step-functions-knows")
    assert callbacks.report_failure(run_id, "submit_job", "boom") is False
    assert store().get(run_id) is None
    assert token_parameter(DEFAULT_PREFIX, "manual__2026-01-01T00:00:00+00:00") == \
        f"{DEFAULT_PREFIX}/manual__2026-01-01T00_00_00_00_00/task-token"


def test_a_heartbeat_vams_no_longer_waits_for_abandons_the_job_and_silences_the_run(moto_url: str) -> None:
    """The execution timed out (moto then answers the token's heartbeat InvalidToken): the heartbeat raises
    JobAbandonedError for the wait step, and the token is dropped, so the failure that follows sends nothing."""
    from isaaclab_pipeline.backends.base import JobAbandonedError

    execution = PipelineExecution(timeout_s=2, heartbeat_s=1)
    run_id = "vams__timed-out"
    store().put(run_id, execution.token)
    assert execution.wait_done(timeout_s=30)["status"] == "FAILED"  # States.Timeout: VAMS stopped waiting
    start_recording(moto_url)
    with pytest.raises(JobAbandonedError, match=r"^VAMS stopped waiting \(execution aborted or timed out\)$"):
        callbacks.on_job_progress(context(run_id, VAMS_CONF, "wait_for_job"), {"iteration": 7})
    assert store().get(run_id) is None
    callbacks.on_task_failure(context(run_id, VAMS_CONF, "wait_for_job", RuntimeError("terminated")))
    callbacks.on_dag_failure(context(run_id, VAMS_CONF, "wait_for_job"))
    assert len(recorded_calls(moto_url, "AWSStepFunctions.SendTaskHeartbeat")) == 1
    assert recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure") == []


def test_task_timed_out_is_vams_stopping_too(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Step Functions answers for a stopped or timed-out execution's token (moto cannot: its StopExecution
    leaves a waiting callback task running), through botocore's Stubber; the token store stays on moto."""
    from botocore.stub import Stubber
    from isaaclab_pipeline.backends.base import JobAbandonedError

    sfn = boto3.client("stepfunctions")
    stub = Stubber(sfn)
    stub.add_client_error("send_task_heartbeat", "TaskTimedOut", "Task Timed Out: 'Provided task does not exist "
                          "anymore'", expected_params={"taskToken": "tok-of-a-stopped-execution"})
    stub.activate()
    monkeypatch.setattr(callbacks, "_clients", lambda: (sfn, store()))
    store().put("vams__stopped", "tok-of-a-stopped-execution")
    with pytest.raises(JobAbandonedError):
        callbacks.on_job_progress(context("vams__stopped", VAMS_CONF, "wait_for_job"), {"state": "queued"})
    stub.assert_no_pending_responses()
    assert store().get("vams__stopped") is None


def test_a_batch_job_is_registered_on_vamss_orchestration_bus(moto_url: str) -> None:
    """The event VAMS's registerPipelineExecution lambda reads (source = the step's event prefix, detail-type
    pipeline.execution.register, a batchJob sub-execution), caught here by a rule like VAMS's standing one."""
    import vams_contract as vc

    events, sqs = boto3.client("events"), boto3.client("sqs")
    bus = events.create_event_bus(Name="vams-prod-orchestration")["EventBusArn"]
    queue = sqs.create_queue(QueueName="registrations")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="register", EventBusName="vams-prod-orchestration", EventPattern=json.dumps(
        {"source": [{"prefix": "vams.prod"}], "detail-type": ["pipeline.execution.register"]}))
    events.put_targets(Rule="register", EventBusName="vams-prod-orchestration",
                       Targets=[{"Id": "q", "Arn": queue_arn}])
    conf = {**VAMS_CONF, "vams": {**VAMS_CONF["vams"], "pipelineExecutionId": vc.PIPELINE_EXECUTION_ID,
                                  "orchestration": {"busArn": bus, "eventPrefix": vc.EVENT_PREFIX}}}
    handle = {"backend": "batch", "jobId": "j1", "externalId": "0f1e2d3c-batch-job", "details": {},
              "stagingUri": "s3://staging/j1"}

    assert callbacks.on_job_submitted(context("vams__reg", conf, "submit_job"), handle) is True
    [message] = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=5)["Messages"]
    event = json.loads(message["Body"])
    assert event["source"] == vc.EVENT_PREFIX and event["detail-type"] == "pipeline.execution.register"
    assert event["detail"] == {"pipelineExecutionId": vc.PIPELINE_EXECUTION_ID,
                               "subExecution": {"resourceType": "batchJob", "jobId": "0f1e2d3c-batch-job"}}
    # a local job has nothing VAMS could stop; a run without the bus, or not VAMS's, registers nothing
    assert callbacks.on_job_submitted(context("vams__reg", conf, "submit_job"), {**handle, "backend": "local"}) is False
    assert callbacks.on_job_submitted(context("vams__reg", VAMS_CONF, "submit_job"), handle) is False


def test_success_writes_preview_metadata_and_result_under_vamss_outputs(moto_url: str, tmp_path) -> None:
    """A training's reward curve, asset.metadata.json and the result, in VAMS's run bucket, then the success."""
    from isaaclab_pipeline.config import job_uuid

    execution = PipelineExecution()
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="vams-run-io")
    run_id = "vams__asset-outputs"
    out = tmp_path / job_uuid("isaac-lab-training", run_id)
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"best_mean_reward": {"value": 3.5, "step": 3}, "tags": {
        "Train/mean_reward": {"last": 3.0, "last_step": 9}, "Train/mean_episode_length": {"last": 99.5,
                                                                                            "last_step": 9}}}))
    (out / "agent-params.txt").write_text("seed: 5\nnum_steps_per_env: 24\nmax_iterations: 10\n")
    (out / "reward_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n-a-curve")
    (out / "cost.json").write_text(json.dumps({"backend": "batch", "gpuSeconds": 120.0, "wallSeconds": 60.0,
                                               "estimatedCostUsd": 0.0134, "instanceType": "g6.xlarge"}))
    prefix = "pipelines/isaac-lab-training/job/output/E1/"
    outputs = {k: f"s3://vams-run-io/{prefix}{k}/" for k in ("previews", "metadata", "results")}
    conf = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 64}, "outputS3Path": str(tmp_path),
            "vams": {"callback": True, "outputs": outputs}}
    store().put(run_id, execution.token)

    callbacks.on_dag_success(context(run_id, conf, "publish_outputs"))

    output = json.loads(execution.wait_done()["output"])
    assert output["metrics"]["iterations"] == 10 and output["metrics"]["envSteps"] == 10 * 64 * 24

    def get(key: str) -> bytes:
        return s3.get_object(Bucket="vams-run-io", Key=prefix + key)["Body"].read()

    assert get("previews/reward_curve.png") == b"\x89PNG\r\n\x1a\n-a-curve"
    meta = json.loads(get("metadata/asset.metadata.json"))
    rows = {m["metadataKey"]: (m["metadataValue"], m["metadataValueType"]) for m in meta["metadata"]}
    assert rows["isaaclab_finalMeanReward"] == ("3.0", "number")
    assert rows["isaaclab_finalEpisodeLength"] == ("99.5", "number")
    assert rows["isaaclab_gpuSeconds"] == ("120.0", "number") and rows["isaaclab_estimatedCostUsd"][0] == "0.0134"
    assert rows["isaaclab_task"] == ("Isaac-Custom-Cartpole-Direct", "string")
    assert rows["isaaclab_jobId"] == (out.name, "string") and rows["isaaclab_envSteps"] == ("15360", "number")
    assert json.loads(get("results/isaac-lab-training.json"))["metrics"] == output["metrics"]
    assert output["assetOutputs"]["preview"] == outputs["previews"] + "reward_curve.png"


def test_an_evaluation_previews_its_returns_and_a_failed_write_is_reported_once(moto_url: str, tmp_path) -> None:
    """Without ffmpeg or video, an evaluation's preview is its returns per episode; a prefix that cannot be written
    turns the success into one failure naming the step (VAMS would ingest files without what it shows)."""
    import shutil as _shutil

    from isaaclab_pipeline.config import job_uuid
    from isaaclab_pipeline.vams import asset_outputs

    run_id = "vams__evaluation"
    out = tmp_path / job_uuid("isaac-lab-training", run_id)
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"episodes": 3, "return": {"mean": 5.0, "std": 1.0},
                                                  "length": {"mean": 100.0}, "successRate": 0.5}))
    (out / "episodes.csv").write_text("episode,env,return,length,success\n0,0,4.0,100,1\n1,1,5.0,100,0\n"
                                      "2,2,6.0,100,1\n")
    if _shutil.which("ffmpeg") is None:
        (out / "videos").mkdir()
        (out / "videos" / "evaluate-rl-video-step-0.mp4").write_bytes(b"not decodable without ffmpeg")
    boto3.client("s3").create_bucket(Bucket="vams-run-io")
    outputs = {"previews": "s3://vams-run-io/eval/previews/", "metadata": "s3://vams-run-io-gone/metadata/"}
    conf = {"trainingConfig": {"mode": "evaluate", "task": "T", "policyS3Uri": "s3://vams-assets/a1/m.pt"},
            "outputS3Path": str(tmp_path),
            "vams": {"callback": True, "outputs": outputs}}
    doc = callbacks.success_output(conf, "isaac-lab-training", run_id)
    assert doc["metrics"]["envSteps"] == 300
    image = asset_outputs.preview_image(str(out), asset_outputs.storage.for_uri(str(out)), tmp_path, doc)
    assert image is not None and image.read_bytes()[:4] == b"\x89PNG"

    execution = PipelineExecution()
    store().put(run_id, execution.token)
    start_recording(moto_url)
    callbacks.on_dag_success(context(run_id, conf, "publish_outputs"))
    assert execution.wait_done()["status"] == "FAILED"
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["cause"].startswith("isaac-lab-training step publish_outputs failed: writing VAMS's preview, "
                                    "metadata or result failed")
    assert recorded_calls(moto_url, "AWSStepFunctions.SendTaskSuccess") == []
