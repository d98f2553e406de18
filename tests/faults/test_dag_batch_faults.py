"""AWS faults through the real DAG (Airflow's dag.test) on the AWS Batch backend, against a moto server.

Batch, S3, SSM and Step Functions are moto's; faults are injected with botocore event hooks on every client the
run creates (its tasks and its deferred wait run in this process). The "container" is a hook on SubmitJob that
stages what a finished training stages. Each run is a VAMS run (its task token waits in SSM), so the tests also
count what VAMS hears: exactly one outcome per run.

- transient faults (Batch throttling while waiting, S3 SlowDown on progress.json and on one output upload): the
  run succeeds, VAMS hears one success and no failure, the output is complete with its manifest;
- the wait fails for good (DescribeJobs denied) while the job runs: the job is terminated (no orphan), VAMS hears
  one failure naming wait_for_job, nothing is published;
- publishing fails for good (the manifest cannot be written): VAMS hears one failure naming publish_outputs, the
  output folder holds no file without a manifest, the staged run is kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from fault_injection import Faults, injected

REPO = Path(__file__).resolve().parents[2]
from vams_aws import PipelineExecution, moto_server, recorded_calls, start_recording  # noqa: E402

EVENTS = REPO / "tests" / "fixtures" / "isaaclab_events"
DAG_ID = "isaac-lab-training"
_stamp = [datetime(2022, 1, 1, tzinfo=UTC)]
VARIABLES = {"compute_backend": "batch", "staging_uri": "s3://stage/isaaclab", "batch_job_queue": "gpu-queue",
             "batch_job_definition": "isaaclab-single", "batch_multinode_job_definition": "isaaclab-mnp",
             "poll_interval_s": "0.2", "allowed_uri_prefixes": "s3://outputs/team-a/ s3://assets/",
             "aws_conn_id": "aws_default"}


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto (Batch without Docker, S3, SSM, Step Functions), a migrated DB, the Batch Variables, quick retries."""
    from pipeline_env import quick_retries, scoped_environ, task_policy

    home = tmp_path_factory.mktemp("faults-batch")
    env = {"ISAACLAB_PIPELINE_HOME": str(home), "ISAACLAB_KNOWN_TASKS": str(home / "no-task-list.json"),
           "AIRFLOW_CONN_AWS_DEFAULT": json.dumps({"conn_type": "aws", "extra": {"region_name": "us-east-1"}}),
           **{f"AIRFLOW_VAR_ISAACLAB_{k.upper()}": v for k, v in VARIABLES.items()}}
    with scoped_environ(env):
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        with task_policy(quick_retries), moto_server() as url:
            import urllib.request

            urllib.request.urlopen(urllib.request.Request(url + "/moto-api/config", method="POST",
                                                          data=json.dumps({"batch": {"use_docker": False}}).encode()))
            _batch_and_buckets()
            yield url


def _batch_and_buckets() -> None:
    from pipeline_env import create_batch_resources

    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in ("stage", "outputs"):
        s3.create_bucket(Bucket=bucket)
    create_batch_resources(boto3.client("batch", region_name="us-east-1"), boto3.client("iam", region_name="us-east-1"))


def _next_run() -> tuple[datetime, str, str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from isaaclab_pipeline.config import job_uuid

    _stamp[0] += timedelta(minutes=1)
    when = _stamp[0]
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)
    return when, run_id, job_uuid(DAG_ID, run_id)


def _container(faults: Faults, job_id: str) -> None:
    """What the job's container does, as SubmitJob returns: stage a finished training (events, checkpoints)."""
    def stage(parsed: dict[str, Any]) -> None:
        s3 = boto3.client("s3", region_name="us-east-1")
        prefix = f"isaaclab/{job_id}"
        files = {f"run/{p.name}": p.read_bytes() for p in EVENTS.iterdir()}
        files.update({"checkpoints/rsl_rl/cartpole/2026-11-30_10-00-00/model_0.pt": b"m0",
                      "checkpoints/rsl_rl/cartpole/2026-11-30_10-00-00/model_4.pt": b"m4",
                      "runner.log": b"trained\n", "progress.json": json.dumps({"state": "succeeded",
                                                                               "iteration": 5}).encode(),
                      "result.json": json.dumps({"jobId": job_id, "status": "succeeded",
                                                 "runDir": "2026-11-30_10-00-00"}).encode()})
        for rel, data in files.items():
            s3.put_object(Bucket="stage", Key=f"{prefix}/{rel}", Body=data)

    faults.on_answer("batch", "SubmitJob", stage)


def _still_running_until_terminated(faults: Faults) -> None:
    """moto's Docker-less jobs end at once; keep ours RUNNING (as DescribeJobs answers) until it is terminated."""
    def rewrite(parsed: dict[str, Any]) -> None:
        terminated = {p.get("jobId") for p in faults.seen("batch", "TerminateJob")}
        for job in parsed.get("jobs", []):
            if job["jobId"] not in terminated:
                job["status"], job["statusReason"] = "RUNNING", ""

    faults.on_answer("batch", "DescribeJobs", rewrite)


def _run_as_vams(url: str, faults: Faults) -> tuple[Any, dict[str, str], str, PipelineExecution]:
    from isaaclab_pipeline.vams.token_store import TokenStore
    from isaaclab_tools.cli import load_dag

    when, run_id, job_id = _next_run()
    conf = {"trainingConfig": {"task": "Isaac-Cartpole-v0", "numEnvs": 64, "maxIterations": 5, "seed": 1},
            "outputS3Path": "s3://outputs/team-a", "vams": {"callback": True, "executingUserName": "alice"}}
    execution = PipelineExecution()
    TokenStore(boto3.client("ssm", region_name="us-east-1")).put(run_id, execution.token)
    _container(faults, job_id)
    start_recording(url)
    with injected(faults):
        run = load_dag().test(run_after=when, logical_date=when, run_conf=conf)
    assert run.run_id == run_id
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}, job_id, execution


def _outcomes(url: str) -> tuple[list[dict], list[dict]]:
    return (recorded_calls(url, "AWSStepFunctions.SendTaskSuccess"),
            recorded_calls(url, "AWSStepFunctions.SendTaskFailure"))


def _output(job_id: str) -> dict[str, bytes]:
    s3 = boto3.client("s3", region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket="outputs", Prefix=f"team-a/{job_id}/").get("Contents", [])
    return {o["Key"].split(f"{job_id}/", 1)[1]: s3.get_object(Bucket="outputs", Key=o["Key"])["Body"].read()
            for o in listed}


def _is_output(name: str):
    return lambda params: params.get("Bucket") == "outputs" and params.get("Key", "").endswith(name)


def test_transient_faults_while_waiting_and_publishing_still_succeed_once(aws: str) -> None:
    faults = Faults()
    _still_running_until_terminated(faults)  # a job still running, so the wait really polls it
    describe = faults.fail("batch", "DescribeJobs", "TooManyRequestsException", 429, times=3)
    progress = faults.fail("s3", "GetObject", "SlowDown", 503, times=3,
                           when=lambda p: p.get("Key", "").endswith("/progress.json"))
    upload = faults.fail("s3", "PutObject", "SlowDown", 503, times=1, when=_is_output("metrics.csv"))
    # the job "ends" after a few polls: DescribeJobs answers with moto's SUCCEEDED once the rewrite stops
    polls = {"n": 0}

    def finish_after_some_polls(parsed: dict[str, Any]) -> None:
        polls["n"] += 1
        if polls["n"] >= 8:
            faults.after[:] = [a for a in faults.after if a[1] != "DescribeJobs"]

    faults.on_answer("batch", "DescribeJobs", finish_after_some_polls)
    run, states, job_id, execution = _run_as_vams(aws, faults)
    assert str(run.state) == "success", states
    assert describe.hits == 3 and upload.hits == 1 and progress.hits >= 1
    successes, failures = _outcomes(aws)
    assert (len(successes), len(failures)) == (1, 0)
    assert execution.wait_done()["status"] == "SUCCEEDED"
    files = _output(job_id)
    manifest = json.loads(files["manifest.json"])
    assert {e["path"] for e in manifest["files"]} == set(files) - {"manifest.json"}
    assert files["checkpoints/model_4.pt"] == b"m4" and "metrics.csv" in files
    assert faults.seen("batch", "TerminateJob") == []


def test_a_wait_that_fails_for_good_terminates_the_job(aws: str) -> None:
    faults = Faults()
    _still_running_until_terminated(faults)
    submitted: list[str] = []
    faults.on_answer("batch", "SubmitJob", lambda parsed: submitted.append(parsed["jobId"]))
    faults.fail("batch", "DescribeJobs", "AccessDeniedException", 403, times=-1,
                when=lambda params: bool(submitted))  # denied from the moment the job exists
    run, states, job_id, execution = _run_as_vams(aws, faults)
    assert str(run.state) == "failed" and states["wait_for_job"] == "failed", states
    assert submitted and {p.get("jobId") for p in faults.seen("batch", "TerminateJob")} == set(submitted)
    successes, failures = _outcomes(aws)
    assert (len(successes), len(failures)) == (0, 1)
    assert failures[0]["error"] == "IsaacLabTraining.wait_for_jobFailed"
    assert _output(job_id) == {}


def test_a_publish_that_fails_for_good_leaves_no_partial_output(aws: str) -> None:
    faults = Faults()
    faults.fail("s3", "PutObject", "AccessDenied", 403, times=-1, when=_is_output("/manifest.json"))
    run, states, job_id, execution = _run_as_vams(aws, faults)
    assert str(run.state) == "failed" and states["publish_outputs"] == "failed", states
    assert states["convert_tensorboard_logs"] == "success"
    successes, failures = _outcomes(aws)
    assert (len(successes), len(failures)) == (0, 1)
    assert failures[0]["error"] == "IsaacLabTraining.publish_outputsFailed"
    assert _output(job_id) == {}  # no file without a manifest
    staged = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="stage",
                                                                         Prefix=f"isaaclab/{job_id}/")
    assert any(o["Key"].endswith("model_4.pt") for o in staged["Contents"])  # kept for a retry
