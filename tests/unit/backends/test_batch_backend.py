"""The Batch backend's exact requests (botocore Stubber: moto ignores nodeOverrides and retryStrategy)."""

from __future__ import annotations

import dataclasses
import json

import boto3
import pytest
from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from botocore.stub import Stubber
from isaaclab_pipeline.backends import JobState, get_backend
from isaaclab_pipeline.backends.batch import RETRY_STRATEGY, BatchBackend, batch_job_name, failure_reason
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings
from moto import mock_aws

JOB = "5d0c1a9e-1111-4222-8333-944455556666"
RUN = "manual__2026-11-26T10:00:00+00:00"
NAME = f"isaaclab-{JOB}-manual__2026-11-26T10-00-00-00-00"
SPEC_URI = f"s3://stage/isaaclab/{JOB}/spec.json"
SETTINGS = PipelineSettings(compute_backend="batch", staging_uri="s3://stage/isaaclab", batch_job_queue="gpu-queue",
                            batch_job_definition="isaaclab-single", batch_multinode_job_definition="isaaclab-mnp",
                            batch_gpus_per_node=4, batch_max_runtime_s=28800)
COMMAND = ["python", "-m", "isaaclab_runner", "run", "--spec", SPEC_URI]
TAGS = {"isaaclab:jobId": JOB, "isaaclab:dagRunId": RUN}


def _spec(num_nodes: int = 1) -> JobSpec:
    return JobSpec(job_id=JOB, mode="train", task="Isaac-Custom-Cartpole-Direct", rl_library="rsl_rl", seed=1,
                   num_envs=4096, staging_uri=f"s3://stage/isaaclab/{JOB}", num_nodes=num_nodes)


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    conn = {"conn_type": "aws", "extra": {"region_name": "us-east-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="stage")
        hook = BatchClientHook(aws_conn_id="aws_default", region_name="us-east-1")
        with Stubber(hook.client) as stub:
            yield BatchBackend(SETTINGS, RUN, hook=hook), stub
            stub.assert_no_pending_responses()


def _expect_list(stub: Stubber, jobs: list[dict]) -> None:
    stub.add_response("list_jobs", {"jobSummaryList": [{"jobId": j["jobId"], "jobName": NAME} for j in jobs]},
                      {"jobQueue": "gpu-queue", "filters": [{"name": "JOB_NAME", "values": [NAME]}]})
    if jobs:
        stub.add_response("describe_jobs", {"jobs": jobs}, {"jobs": [j["jobId"] for j in jobs]})


def _job(job_id: str, status: str, created: int, tags: dict | None = None, **extra) -> dict:
    return {"jobId": job_id, "jobName": NAME, "jobQueue": "gpu-queue", "status": status, "startedAt": 1,
            "jobDefinition": "isaaclab-single", "createdAt": created, "tags": tags or TAGS, **extra}


def test_job_name_is_stable_valid_and_bounded() -> None:
    assert batch_job_name(JOB, RUN) == NAME
    long = batch_job_name(JOB, "x" * 300)
    assert len(long) == 128 and long.startswith(f"isaaclab-{JOB}-")
    assert batch_job_name(JOB, None) == f"isaaclab-{JOB}"


def test_single_node_submit_request(aws) -> None:
    backend, stub = aws
    _expect_list(stub, [])
    stub.add_response("submit_job", {"jobName": NAME, "jobId": "batch-1"}, {
        "jobName": NAME, "jobQueue": "gpu-queue", "jobDefinition": "isaaclab-single",
        "containerOverrides": {"command": COMMAND, "resourceRequirements": [{"type": "GPU", "value": "4"}],
                               "environment": [{"name": "ISAACLAB_JOB_ID", "value": JOB}]},
        "retryStrategy": {"attempts": 3, "evaluateOnExit": [
            {"onStatusReason": "Host EC2*", "action": "RETRY"}, {"onExitCode": "143", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"}]},
        "timeout": {"attemptDurationSeconds": 28800}, "tags": TAGS, "propagateTags": True})
    handle = backend.submit(_spec())
    assert (handle.backend, handle.job_id, handle.external_id) == ("batch", JOB, "batch-1")
    assert handle.details["regionName"] == "us-east-1" and handle.details["jobName"] == NAME
    staged = boto3.client("s3", region_name="us-east-1").get_object(Bucket="stage", Key=f"isaaclab/{JOB}/spec.json")
    spec = json.loads(staged["Body"].read())
    assert spec["gpusPerNode"] == 4 and spec["jobId"] == JOB  # the container learns its GPU count from the spec


def test_multi_node_submit_request(aws) -> None:
    backend, stub = aws
    _expect_list(stub, [])
    overrides = {"command": COMMAND, "resourceRequirements": [{"type": "GPU", "value": "4"}],
                 "environment": [{"name": "ISAACLAB_JOB_ID", "value": JOB}]}
    stub.add_response("submit_job", {"jobName": NAME, "jobId": "batch-mnp"}, {
        "jobName": NAME, "jobQueue": "gpu-queue", "jobDefinition": "isaaclab-mnp",
        "nodeOverrides": {"numNodes": 2, "nodePropertyOverrides": [{"targetNodes": "0:",
                                                                     "containerOverrides": overrides}]},
        "retryStrategy": RETRY_STRATEGY, "timeout": {"attemptDurationSeconds": 28800}, "tags": TAGS,
        "propagateTags": True})
    assert backend.submit(_spec(num_nodes=2)).external_id == "batch-mnp"


def test_multi_node_jobs_go_to_their_own_queue_and_are_found_there() -> None:
    """Batch runs no multi-node parallel job on Spot: an on-demand queue can be set for them."""
    settings = dataclasses.replace(SETTINGS, batch_multinode_job_queue="ondemand-queue")
    with mock_aws():
        hook = BatchClientHook(aws_conn_id="aws_default", region_name="us-east-1")
        backend = BatchBackend(settings, RUN, hook=hook)
        assert (backend.job_queue(1), backend.job_queue(2)) == ("gpu-queue", "ondemand-queue")
        with Stubber(hook.client) as stub:  # a retried submit looks for its job in both queues
            for queue in ("gpu-queue", "ondemand-queue"):
                stub.add_response("list_jobs", {"jobSummaryList": []},
                                  {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [NAME]}]})
            assert backend.find_jobs(NAME, JOB) == []
            stub.assert_no_pending_responses()
    assert BatchBackend(SETTINGS, RUN, hook=hook).job_queue(2) == "gpu-queue"  # unset: the one queue


def test_retried_submit_reattaches_to_the_running_job(aws) -> None:
    backend, stub = aws
    _expect_list(stub, [_job("old-failed", "FAILED", 1), _job("live", "RUNNING", 2)])
    # no submit_job response is queued: a second submit would fail the Stubber
    assert backend.submit(_spec()).external_id == "live"


def test_only_a_failed_job_is_resubmitted(aws) -> None:
    backend, stub = aws
    _expect_list(stub, [_job("failed", "FAILED", 1)])
    stub.add_response("submit_job", {"jobName": NAME, "jobId": "second"})
    assert backend.submit(_spec()).external_id == "second"


def test_a_same_named_job_of_another_run_is_not_ours(aws) -> None:
    backend, stub = aws
    _expect_list(stub, [_job("foreign", "RUNNING", 1, tags={"isaaclab:jobId": "someone-else"})])
    stub.add_response("submit_job", {"jobName": NAME, "jobId": "mine"})
    assert backend.submit(_spec()).external_id == "mine"


def test_failure_carries_reason_exit_code_and_attempts(aws) -> None:
    backend, stub = aws
    job = _job("batch-1", "FAILED", 1, statusReason="Essential container in task exited",
               container={"exitCode": 1, "reason": "OutOfMemoryError: Container killed due to memory usage"},
               attempts=[{"statusReason": "Host EC2 (instance i-0abc) terminated.", "container": {"exitCode": 143}},
                         {"statusReason": "Essential container in task exited", "container": {"exitCode": 1}}])
    stub.add_response("describe_jobs", {"jobs": [job]}, {"jobs": ["batch-1"]})
    from isaaclab_pipeline.backends import JobHandle

    status = backend.status(JobHandle("batch", JOB, "batch-1"))
    assert status.state == JobState.FAILED and status.exit_code == 1
    assert status.reason == failure_reason(job)
    assert "OutOfMemoryError" in status.reason
    assert "1: Host EC2 (instance i-0abc) terminated. (exit 143)" in status.reason


@pytest.mark.parametrize(("settings", "message"), [
    (PipelineSettings(compute_backend="batch", staging_uri="s3://b/p"),
     "isaaclab_batch_job_queue, isaaclab_batch_job_definition"),
    (PipelineSettings(compute_backend="batch", batch_job_queue="q", batch_job_definition="d"), "s3:// staging"),
])
def test_missing_deployment_settings_are_named(settings: PipelineSettings, message: str) -> None:
    spec = _spec() if settings.staging_uri else JobSpec(**{**_spec().__dict__, "staging_uri": "/tmp/st"})
    with pytest.raises(ValueError, match=message):
        BatchBackend(settings, RUN, hook=object()).submit(spec)


def test_multinode_needs_its_job_definition() -> None:
    settings = PipelineSettings(compute_backend="batch", batch_job_queue="q", batch_job_definition="d")
    with pytest.raises(ValueError, match="isaaclab_batch_multinode_job_definition"):
        BatchBackend(settings, RUN, hook=object()).submit(_spec(num_nodes=2))


def test_get_backend_picks_batch() -> None:
    assert isinstance(get_backend(SETTINGS, RUN), BatchBackend)


def test_a_resubmit_starts_from_an_empty_staging_folder(aws) -> None:
    """The failed job's files move to superseded/<job>/submission-1/: the new job neither resumes from its
    checkpoints nor publishes them."""
    backend, stub = aws
    s3 = boto3.client("s3", region_name="us-east-1")
    for key in ("checkpoints/rsl_rl/x/ts/model_50.pt", "run/events.out.tfevents.1", "result.json"):
        s3.put_object(Bucket="stage", Key=f"isaaclab/{JOB}/{key}", Body=b"old job")
    _expect_list(stub, [_job("failed", "FAILED", 1)])
    stub.add_response("submit_job", {"jobName": NAME, "jobId": "second"})
    assert backend.submit(_spec()).external_id == "second"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="stage")["Contents"])
    assert keys == sorted([f"isaaclab/superseded/{JOB}/submission-1/{k}" for k in (
        "checkpoints/rsl_rl/x/ts/model_50.pt", "result.json", "run/events.out.tfevents.1")] + [
        f"isaaclab/{JOB}/spec.json"])


def test_a_throttled_submit_that_went_through_is_not_submitted_twice(aws) -> None:
    backend, stub = aws
    _expect_list(stub, [])
    stub.add_client_error("submit_job", service_error_code="TooManyRequestsException", http_status_code=429)
    _expect_list(stub, [_job("went-through", "RUNNABLE", 2)])
    assert backend.submit(_spec()).external_id == "went-through"


def test_a_throttled_submit_that_did_not_go_through_is_retried(aws, monkeypatch) -> None:
    import isaaclab_pipeline.backends.batch as batch_module

    monkeypatch.setattr(batch_module.time, "sleep", lambda s: None)
    backend, stub = aws
    _expect_list(stub, [])
    stub.add_client_error("submit_job", service_error_code="ServerException", http_status_code=500)
    _expect_list(stub, [])
    stub.add_response("submit_job", {"jobName": NAME, "jobId": "retried"})
    assert backend.submit(_spec()).external_id == "retried"


def test_a_refused_submit_is_not_retried(aws) -> None:
    from botocore.exceptions import ClientError

    backend, stub = aws
    _expect_list(stub, [])
    stub.add_client_error("submit_job", service_error_code="ClientException", http_status_code=400,
                          service_message="JobQueue gpu-queue not found")
    with pytest.raises(ClientError, match="not found"):
        backend.submit(_spec())


def test_a_max_runtime_beyond_what_the_wait_outlasts_is_refused(monkeypatch) -> None:
    import pytest
    from isaaclab_pipeline.settings import PipelineSettings

    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_BATCH_MAX_RUNTIME_S", str(8 * 3600))
    with pytest.raises(ValueError, match="isaaclab_batch_max_runtime_s is 28800; at most 25200"):
        PipelineSettings.load()
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_BATCH_MAX_RUNTIME_S", str(6 * 3600))
    assert PipelineSettings.load().batch_max_runtime_s == 21600
