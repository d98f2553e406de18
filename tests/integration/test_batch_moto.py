"""The Batch backend, trigger and wait operator against a moto server on loopback (S3 + Batch + IAM APIs).

moto runs Batch jobs without Docker here (``use_docker: false``): a submitted job succeeds within a second.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from isaaclab_pipeline.backends import JobHandle, JobState
from isaaclab_pipeline.backends.batch import BatchBackend
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.operators import WaitForIsaacLabJobOperator
from isaaclab_pipeline.settings import PipelineSettings
from isaaclab_pipeline.triggers import IsaacLabJobTrigger
from pipeline_env import create_batch_resources, moto_on_loopback

JOB = "7e0c1a9e-2222-4333-8444-955566667777"
RUN = "manual__2026-11-26T11:00:00+00:00"
MOTO = Path(sys.executable).parent / "moto_server"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_on_loopback() as url:
        yield url


@pytest.fixture
def aws(endpoint, monkeypatch):
    """Fresh moto state with Batch in no-Docker mode, a bucket, a queue and both job definitions."""
    post = lambda path, body=b"": urllib.request.urlopen(urllib.request.Request(endpoint + path, data=body,  # noqa: E731
                                                                               method="POST"))
    post("/moto-api/reset")
    post("/moto-api/config", json.dumps({"batch": {"use_docker": False}}).encode())
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws",
                                                               "extra": {"region_name": "us-east-1"}}))
    kw = {"endpoint_url": endpoint, "region_name": "us-east-1"}
    boto3.client("s3", **kw).create_bucket(Bucket="stage")
    batch = boto3.client("batch", **kw)
    create_batch_resources(batch, boto3.client("iam", **kw))
    settings = PipelineSettings(compute_backend="batch", staging_uri="s3://stage/isaaclab", poll_interval_s=0.2,
                                batch_job_queue="gpu-queue", batch_job_definition="isaaclab-single",
                                batch_multinode_job_definition="isaaclab-mnp", heartbeat_interval_s=600)
    for name, value in (("compute_backend", "batch"), ("staging_uri", settings.staging_uri),
                        ("batch_job_queue", "gpu-queue"), ("batch_job_definition", "isaaclab-single"),
                        ("batch_multinode_job_definition", "isaaclab-mnp"), ("poll_interval_s", "0.2")):
        monkeypatch.setenv(f"AIRFLOW_VAR_ISAACLAB_{name.upper()}", value)
    yield settings, batch, boto3.client("s3", **kw)


def _spec(num_nodes: int = 1) -> JobSpec:
    return JobSpec(job_id=JOB, mode="train", task="Isaac-Custom-Cartpole-Direct", rl_library="rsl_rl", seed=1,
                   num_envs=64, staging_uri=f"s3://stage/isaaclab/{JOB}", num_nodes=num_nodes)


def _wait_done(backend: BatchBackend, handle: JobHandle) -> JobState:
    for _ in range(50):
        state = backend.status(handle).state
        if state.done:
            return state
        time.sleep(0.1)
    raise AssertionError("job did not finish")


@pytest.mark.parametrize("num_nodes", [1, 2])
def test_submit_describe_list_and_a_retried_submit_reattaches(aws, num_nodes: int) -> None:
    settings, batch, s3 = aws
    backend = BatchBackend(settings, RUN)
    handle = backend.submit(_spec(num_nodes))
    spec = json.loads(s3.get_object(Bucket="stage", Key=f"isaaclab/{JOB}/spec.json")["Body"].read())
    assert spec["jobId"] == JOB and spec["numNodes"] == num_nodes
    job = batch.describe_jobs(jobs=[handle.external_id])["jobs"][0]
    assert job["jobName"] == handle.details["jobName"] and job["tags"]["isaaclab:jobId"] == JOB
    assert job["jobDefinition"].split("/")[-1].startswith("isaaclab-mnp" if num_nodes > 1 else "isaaclab-single")
    assert _wait_done(backend, handle) == JobState.SUCCEEDED
    # the submit step retried (a new worker, a new backend object): same job, no second one
    again = BatchBackend(settings, RUN).submit(_spec(num_nodes))
    assert again.external_id == handle.external_id
    listed = batch.list_jobs(jobQueue="gpu-queue", filters=[{"name": "JOB_NAME", "values": [job["jobName"]]}])
    assert [j["jobId"] for j in listed["jobSummaryList"]] == [handle.external_id]


def test_killed_wait_terminates_the_job(aws) -> None:
    settings, batch, _ = aws
    handle = BatchBackend(settings, RUN).submit(_spec())
    assert handle.staging_uri == f"s3://stage/isaaclab/{JOB}"  # the handle carries what waiting needs
    op = WaitForIsaacLabJobOperator(task_id="wait_for_job", job_handle=handle.to_dict())
    op._backend = BatchBackend(settings)  # what execute() sets before it defers
    op.on_kill()
    job = batch.describe_jobs(jobs=[handle.external_id])["jobs"][0]
    assert job["statusReason"] == "the Airflow task was killed"


def test_trigger_reports_progress_and_success(aws) -> None:
    settings, _, s3 = aws
    handle = BatchBackend(settings, RUN).submit(_spec())
    s3.put_object(Bucket="stage", Key=f"isaaclab/{JOB}/progress.json",
                  Body=json.dumps({"state": "running", "iteration": 40, "maxIterations": 150, "meanReward": 3.2}))
    poller = BatchBackend(settings).poller(handle)
    trigger = IsaacLabJobTrigger(poller=poller.name, poller_kwargs=poller.kwargs, staging_uri=handle.staging_uri,
                                 poll_interval_s=0.1)
    classpath, kwargs = trigger.serialize()
    assert classpath == "isaaclab_pipeline.triggers.IsaacLabJobTrigger" and json.dumps(kwargs)
    event = asyncio.run(_first_event(IsaacLabJobTrigger(**kwargs)))
    assert event["status"] == "success" and event["backend_status"] == "SUCCEEDED"
    assert event["progress"]["iteration"] == 40
    assert event["transitions"][-1]["status"] == "SUCCEEDED"


def test_killed_deferred_wait_terminates_the_job(aws) -> None:
    settings, batch, _ = aws
    handle = BatchBackend(settings, RUN).submit(_spec())
    poller = BatchBackend(settings).poller(handle)
    trigger = IsaacLabJobTrigger(poller=poller.name, poller_kwargs=poller.kwargs, staging_uri=handle.staging_uri)
    asyncio.run(trigger.on_kill())
    assert batch.describe_jobs(jobs=[handle.external_id])["jobs"][0]["statusReason"] == "the Airflow task was killed"


def test_execute_complete_fails_with_the_reason(aws) -> None:
    settings, _, _ = aws
    handle = BatchBackend(settings, RUN).submit(_spec())
    op = WaitForIsaacLabJobOperator(task_id="wait_for_job", job_handle=handle.to_dict())
    event = {"status": "error", "job": handle.external_id, "backend_status": "FAILED", "message":
             "Host EC2 (instance i-0abc) terminated.", "progress": {"iteration": 7, "maxIterations": 10},
             "transitions": [{"status": "FAILED", "reason": "Host EC2 (instance i-0abc) terminated.", "attempts": 3}]}
    with pytest.raises(Exception, match=r"error: Host EC2 \(instance i-0abc\) terminated"):
        op.execute_complete({"ti": None}, event)
    assert op.execute_complete({"ti": None}, {**event, "status": "success"}) == {"iteration": 7, "maxIterations": 10}


async def _first_event(trigger: IsaacLabJobTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("no event")
