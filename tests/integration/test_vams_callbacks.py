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
