"""A moto server on loopback standing in for SSM, Step Functions, SQS and S3, plus real task tokens.

A token comes from a real (moto-executed) state machine whose task waits with ``sqs:sendMessage.waitForTaskToken``,
as VAMS's pipeline state waits on its Lambda; the execution's history then shows what the callbacks sent.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MOTO_SERVER = Path(__file__).resolve().parents[1] / ".venvs" / "airflow" / "bin" / "moto_server"


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on loopback with state machines executing; boto3 points at it for the block."""
    from pipeline_env import moto_on_loopback

    old = os.environ.get("AWS_ENDPOINT_URL")
    with moto_on_loopback() as url:
        _post(url, "/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        os.environ["AWS_ENDPOINT_URL"] = url
        try:
            yield url
        finally:
            if old is None:
                os.environ.pop("AWS_ENDPOINT_URL", None)
            else:
                os.environ["AWS_ENDPOINT_URL"] = old


def _post(url: str, path: str, body: Any = None) -> None:
    data = json.dumps(body).encode() if body is not None else b""
    urllib.request.urlopen(urllib.request.Request(url + path, data=data, method="POST",
                                                  headers={"Content-Type": "application/json"}))


def start_recording(url: str) -> None:
    """Record every request moto receives from now on."""
    _post(url, "/moto-api/recorder/reset-recording")
    _post(url, "/moto-api/recorder/start-recording")


def recorded_calls(url: str, target: str) -> list[dict[str, Any]]:
    """The recorded requests with ``X-Amz-Target`` ``target`` (e.g. ``AWSStepFunctions.SendTaskFailure``), decoded."""
    raw = urllib.request.urlopen(f"{url}/moto-api/recorder/download-recording").read().decode()
    calls = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        req = json.loads(line)
        if req["headers"].get("X-Amz-Target") == target:
            body = req.get("body") or ""
            calls.append(json.loads(base64.b64decode(body) if req.get("body_encoded") else body))
    return calls


class PipelineExecution:
    """One waiting Step Functions execution, as VAMS starts for a pipeline with ``waitForCallback``."""

    def __init__(self, name: str = "vams-pipeline", timeout_s: int = 3600, heartbeat_s: int = 1800) -> None:
        """Start the execution and take its task token.

        :param timeout_s: the task's TimeoutSeconds (VAMS's taskTimeout): past it the execution times out and
            moto answers the token's heartbeats ``InvalidToken`` (AWS: ``TaskTimedOut``).
        :param heartbeat_s: the task's HeartbeatSeconds (VAMS's taskHeartbeatTimeout).
        """
        import boto3

        self.sfn = boto3.client("stepfunctions")
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName=f"{name}-{time.time_ns()}")["QueueUrl"]
        definition = {"StartAt": "RunPipeline", "States": {"RunPipeline": {
            "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            # explicit TimeoutSeconds: moto times a service task out after 60 s by default (States.Timeout)
            "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": timeout_s, "HeartbeatSeconds": min(heartbeat_s, timeout_s - 1), "End": True}}}
        machine = self.sfn.create_state_machine(
            name=f"{name}-{time.time_ns()}", definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/vams-pipeline")["stateMachineArn"]
        self.arn = self.sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
        for _ in range(100):
            messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages")
            if messages:
                self.token = json.loads(messages[0]["Body"])["token"]
                return
        raise TimeoutError("the state machine never handed out its task token")

    def wait_done(self, timeout_s: float = 15) -> dict[str, Any]:
        """Wait for the execution to leave RUNNING; return describe_execution."""
        deadline = time.monotonic() + timeout_s
        while True:
            desc = self.sfn.describe_execution(executionArn=self.arn)
            if desc["status"] != "RUNNING" or time.monotonic() > deadline:
                return desc
            time.sleep(0.2)

    def status(self) -> str:
        return self.sfn.describe_execution(executionArn=self.arn)["status"]

    def events(self) -> list[dict[str, Any]]:
        return self.sfn.get_execution_history(executionArn=self.arn)["events"]

    def failure(self) -> dict[str, Any]:
        """The TaskFailed event's details (error, cause)."""
        failed = [e for e in self.events() if e["type"] == "TaskFailed"]
        assert len(failed) == 1, [e["type"] for e in self.events()]
        return failed[0]["taskFailedEventDetails"]
