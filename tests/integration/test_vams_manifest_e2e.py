"""VAMS 2.6 end to end: a task body with only a manifest and a configuration file (both in S3) → the bridge → the
real api-server → a real DAG run on the local backend with a tiny real training → files, preview, asset metadata and
result under the manifest's outputs → ``send_task_success`` with the headline metrics. And the abort: VAMS stops
waiting mid-training, the next heartbeat is refused, the job is terminated, the run fails with the reason and VAMS
hears nothing more.

AWS is a moto server on loopback (S3, SSM, Step Functions, SQS for the waiting execution); payloads come from
tests/vams_contract.py (built from VAMS's source). No scheduler runs: the api-server creates the run (as on MWAA),
and ``dag.test`` executes it with the conf the api-server stored, under the run id the bridge chose (so the callbacks
find the token the bridge stored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import vams_contract as vc
from pipeline_env import ISAACLAB_PYTHON
from vams_aws import PipelineExecution, moto_server, recorded_calls, start_recording

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venvs" / "airflow" / "bin" / "airflow"
ASSETS, RUN = "vams-assets", "vams-run-io"  # the asset's bucket and the execution's I/O bucket differ
DAG_ID = "isaac-lab-training"
_stamp = [datetime(2021, 1, 1, tzinfo=UTC)]
pytestmark = pytest.mark.e2e  # tiny real Isaac Lab trainings (a minute or more each on 2 cores)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Moto with VAMS's buckets and the env package in the asset; a private pipeline home; the real api-server."""
    from pipeline_env import api_server, dag_home, no_retries, task_policy

    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    home = tmp_path_factory.mktemp("vams26")
    variables = {"overrides": '["agent.num_steps_per_env=128"]', "heartbeat_interval_s": "2",
                 "vams_heartbeat_minutes": "0"}
    with dag_home(home, variables), task_policy(no_retries), moto_server() as url:
        s3 = boto3.client("s3")
        for bucket in (ASSETS, RUN):
            s3.create_bucket(Bucket=bucket)
        s3.upload_file(str(home / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz"), ASSETS,
                       "a1/custom_cartpole.tar.gz")
        server_home = home / "api-server"
        dags = server_home / "dags"
        dags.mkdir(parents=True)
        shutil.copy2(REPO / "dags" / "isaac_lab_training.py", dags / "isaac_lab_training.py")
        env = {**os.environ, "AIRFLOW_HOME": str(server_home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
               "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True", "PYTHONPATH": str(REPO / "plugins"),
               "AIRFLOW__API_AUTH__JWT_SECRET": "vams26-test-secret"}
        subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([str(AIRFLOW), "dags", "reserialize"], env=env, check=True, capture_output=True)
        with api_server(AIRFLOW, env, server_home, timeout_s=180) as api_url:
            yield {"home": home, "moto": url, "api": api_url}


def stage_call(execution: PipelineExecution, **training: Any) -> dict[str, Any]:
    """Write the step's manifest and configuration where VAMS writes them; return the Lambda event."""
    body = vc.task_body(RUN, execution.token)
    s3 = boto3.client("s3")
    files = [vc.input_file(ASSETS, "a1", "/custom_cartpole.tar.gz")]
    s3.put_object(Bucket=RUN, Key=f"{vc.input_prefix()}manifest.json", Body=json.dumps(vc.manifest(files, RUN)))
    s3.put_object(Bucket=RUN, Key=f"{vc.input_prefix()}config.json", Body=vc.configuration(
        task="Isaac-Custom-Cartpole-Direct", numEnvs=16, seed=5, **training))
    return {"body": json.dumps(body)}  # Step Functions hands the Lambda {"body": ...}


def bridge_then_run(world: dict[str, Any], event: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict]:
    """The bridge triggers the api-server; then the run it created is executed with the conf the server stored."""
    from airflow.models.dagrun import DagRun
    from isaaclab_tools.cli import load_dag
    from vams_bridge.airflow_api import HttpApi
    from vams_bridge.handler import trigger

    api = HttpApi(world["api"])
    result = trigger(event, api=api, ssm=boto3.client("ssm"), sfn=boto3.client("stepfunctions"),
                     s3=boto3.client("s3"))
    assert result["statusCode"] == 200, result
    run_id = json.loads(result["body"])["dagRunId"]
    created = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
    assert created.status == 200 and created.data["state"] == "queued"
    # dag.test names its run itself; it gets the bridge's run id, under which the token waits in SSM
    monkeypatch.setattr(DagRun, "generate_run_id", staticmethod(lambda **_: run_id))
    _stamp[0] += timedelta(minutes=1)
    run = load_dag().test(run_after=_stamp[0], logical_date=_stamp[0], run_conf=created.data["conf"])
    assert run.run_id == run_id
    return run, created.data


def keys(bucket: str, prefix: str) -> list[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"][len(prefix):] for o in listed)


def read(bucket: str, key: str) -> bytes:
    return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_a_vams_26_call_trains_and_lands_files_preview_and_metadata_in_vamss_outputs(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from isaaclab_pipeline.config import job_uuid

    execution = PipelineExecution()
    event = stage_call(execution, maxIterations=2)
    start_recording(world["moto"])
    run, created = bridge_then_run(world, event, monkeypatch)

    conf = created["conf"]  # what the api-server stored: VAMS's ids, no token
    assert conf["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/custom_cartpole.tar.gz"
    assert conf["outputS3Path"] == f"s3://{RUN}/{vc.output_prefix('files')}"
    assert conf["vams"]["workflowExecutionId"] == vc.EXECUTION_ID and conf["vams"]["assetId"] == "a1"
    assert vc.EXECUTION_ID in created["note"] and execution.token not in json.dumps(created)
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states

    desc = execution.wait_done()
    assert desc["status"] == "SUCCEEDED", [e["type"] for e in execution.events()]
    output = json.loads(desc["output"])
    job_id = job_uuid(DAG_ID, run.run_id)
    assert output["jobId"] == job_id and output["outputS3Path"] == f"{conf['outputS3Path']}{job_id}/"
    metrics = output["metrics"]
    assert metrics["lastStep"] == 1 and metrics["iterations"] == 2 and "lastMeanReward" in metrics
    assert metrics["envSteps"] == 2 * 16 * 128  # iterations × numEnvs × num_steps_per_env
    assert output["cost"]["backend"] == "local" and output["cost"]["wallSeconds"] > 0
    assert len(recorded_calls(world["moto"], "AWSStepFunctions.SendTaskSuccess")) == 1
    assert recorded_calls(world["moto"], "AWSStepFunctions.SendTaskFailure") == []

    # the files where VAMS ingests them, under the job UUID
    files = keys(RUN, vc.output_prefix("files"))
    assert f"{job_id}/manifest.json" in files and any(f.startswith(f"{job_id}/checkpoints/") for f in files)
    # the preview: VAMS takes the first image under previews/
    assert keys(RUN, vc.output_prefix("previews")) == ["reward_curve.png"]
    assert read(RUN, vc.output_prefix("previews") + "reward_curve.png")[:8] == b"\x89PNG\r\n\x1a\n"
    # the asset metadata in the shape VAMS's end-state step applies (asset.metadata.json)
    assert keys(RUN, vc.output_prefix("metadata")) == ["asset.metadata.json"]
    doc = json.loads(read(RUN, vc.output_prefix("metadata") + "asset.metadata.json"))
    assert doc["type"] == "metadata" and doc["updateType"] == "update"
    items = {i["metadataKey"]: i for i in doc["metadata"]}
    assert items["isaaclab_jobId"]["metadataValue"] == job_id
    assert items["isaaclab_finalMeanReward"] == {"metadataKey": "isaaclab_finalMeanReward", "metadataValueType":
                                                 "number", "metadataValue": str(metrics["lastMeanReward"])}
    assert items["isaaclab_iterations"]["metadataValue"] == "2"
    assert items["isaaclab_envSteps"]["metadataValue"] == str(2 * 16 * 128)
    assert items["isaaclab_outputPath"]["metadataValue"] == f"/{job_id}/"
    assert all(isinstance(i["metadataValue"], str) for i in doc["metadata"])
    # the result VAMS records against the execution: what send_task_success carried
    result = json.loads(read(RUN, vc.output_prefix("results") + "isaac-lab-training.json"))
    assert result["metrics"] == metrics and result["jobId"] == job_id
    assert set(output["assetOutputs"]) == {"preview", "metadata", "results"}
    ssm = boto3.client("ssm")
    assert ssm.get_parameters_by_path(Path="/isaac-lab-training/vams", Recursive=True)["Parameters"] == []


def test_vams_stopping_mid_training_terminates_the_job_and_fails_the_run_once(
        world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """VAMS's taskTimeout passes while the job trains: moto ends the waiting task (as Step Functions does when the
    execution is stopped or times out) and answers the next heartbeat ``InvalidToken`` (Step Functions:
    ``TaskTimedOut``). moto's StopExecution leaves a waiting callback task running, so the timeout is how this test
    makes VAMS stop waiting; tests/integration/test_vams_callbacks.py answers ``TaskTimedOut`` itself."""
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_pipeline.vams.callbacks import STOPPED_WAITING

    execution = PipelineExecution(timeout_s=120, heartbeat_s=60)
    started = time.monotonic()
    event = stage_call(execution, maxIterations=100000)  # hours of training unless stopped
    seen: dict[str, Any] = {}
    stop = threading.Event()

    def watch() -> None:  # when did the job first report a training iteration
        while not stop.wait(0.5):
            for progress in (world["home"] / "staging").glob("*/progress.json"):
                try:
                    doc = json.loads(progress.read_text())
                except (OSError, ValueError):
                    continue
                if doc.get("iteration") is not None and "training" not in seen:
                    seen["training"] = time.monotonic() - started
                seen["last"] = doc

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start_recording(world["moto"])
    try:
        run, _created = bridge_then_run(world, event, monkeypatch)
    finally:
        stop.set()
        watcher.join()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "failed" and states["wait_for_job"] == "failed", states
    assert states["convert_tensorboard_logs"] in ("upstream_failed", "None"), states

    job_dir = world["home"] / "jobs" / job_uuid(DAG_ID, run.run_id)
    assert STOPPED_WAITING in (job_dir / "cancelled").read_text()  # the wait step terminated the job
    deadline = time.monotonic() + 180  # SIGTERM: the runner uploads what it has, then exits
    while not (job_dir / "exit_code").exists() and time.monotonic() < deadline:
        time.sleep(1)
    assert (job_dir / "exit_code").exists(), "the terminated job never exited"
    assert "training" in seen, f"the job never trained before VAMS stopped waiting: {seen.get('last')}"
    assert seen["last"]["iteration"] < 100000 - 1  # it did not get to finish
    assert execution.status() != "RUNNING"  # VAMS timed out
    beats = recorded_calls(world["moto"], "AWSStepFunctions.SendTaskHeartbeat")
    assert len(beats) >= 2  # accepted while VAMS waited, then the refused one
    # nothing more reaches VAMS: the task's failure callback finds the token gone
    assert recorded_calls(world["moto"], "AWSStepFunctions.SendTaskFailure") == []
    assert recorded_calls(world["moto"], "AWSStepFunctions.SendTaskSuccess") == []
    ssm = boto3.client("ssm")
    assert ssm.get_parameters_by_path(Path="/isaac-lab-training/vams", Recursive=True)["Parameters"] == []
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert f"terminated: {STOPPED_WAITING}" in logged  # the reason the run failed with
    assert "VAMS stopped waiting: terminating the job" in logged
