"""The real Airflow api-server on loopback, triggered with exactly what the VAMS bridge and the trigger CLI send.

No scheduler runs: a created run stays queued, which is all a trigger promises. The DAG is serialized into the
server's private DB first (``airflow dags reserialize``), as the dag processor would, with MWAA's
``dags_are_paused_at_creation = True``: the DAG must still come up unpaused (``is_paused_upon_creation=False``),
or every run VAMS, the CLI or the UI triggers would wait in ``queued`` forever. A control DAG without the flag,
serialized beside it, shows the setting is in force; the scheduler's own query for queued runs it may start
picks the pipeline's run and leaves the control's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from pipeline_env import api_server as start_api_server
from vams_aws import PipelineExecution, moto_server, recorded_calls, start_recording

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = REPO / ".venvs" / "airflow" / "bin" / "airflow"
sys.path.insert(0, str(REPO / "vams_bridge"))
from vams_bridge.airflow_api import HttpApi  # noqa: E402
from vams_bridge.handler import trigger  # noqa: E402

CONTROL = "paused-at-creation-control"
CONTROL_DAG = f'''
from airflow.sdk import dag, task


@dag(dag_id="{CONTROL}", schedule=None)
def control():
    @task
    def noop():
        pass

    noop()


control()
'''
# The scheduler's selection of queued runs it may set running (paused DAGs' runs are left out), in the server's DB.
STARTABLE = """
import json
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
with create_session() as session:
    print(json.dumps(sorted([r.dag_id, r.run_id] for r in DagRun.get_queued_dag_runs_to_set_running(session))))
"""
SERVER_ENV: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory):
    """A migrated private DB with the DAG serialized, and ``airflow api-server`` on a free loopback port."""
    home = tmp_path_factory.mktemp("api-server-home")
    dags = home / "dags"  # the repository's DAG file and a control DAG that leaves pausing to the default
    dags.mkdir()
    shutil.copy2(REPO / "dags" / "isaac_lab_training.py", dags / "isaac_lab_training.py")
    (dags / "paused_control.py").write_text(CONTROL_DAG)
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True", "PYTHONPATH": str(REPO / "plugins"),
           "AIRFLOW__API_AUTH__JWT_SECRET": "api-server-test-secret",
           "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}  # Airflow's default, kept by MWAA
    SERVER_ENV.clear()
    SERVER_ENV.update(env)
    subprocess.run([str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([str(AIRFLOW), "dags", "reserialize"], env=env, check=True, capture_output=True)
    with start_api_server(AIRFLOW, env, home, timeout_s=120) as url:
        yield url


@pytest.fixture(scope="module")
def moto_url():
    with moto_server() as url:
        yield url


def vams_event(token: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"body": json.dumps({
        "TaskToken": token, "executingUserName": "alice",
        "inputS3AssetFilePath": "s3://vams-assets/cartpole/custom_cartpole.tar.gz",
        "outputS3AssetFilesPath": "s3://vams-assets/cartpole/outputs/",
        "inputParameters": json.dumps(params)})}


def bridge(event: dict, url: str) -> dict[str, Any]:
    return trigger(event, api=HttpApi(url), ssm=boto3.client("ssm"), sfn=boto3.client("stepfunctions"),
                   s3=boto3.client("s3"))


def test_bridge_body_creates_a_run_without_the_token(api_server: str, moto_url: str) -> None:
    execution = PipelineExecution()
    params = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 64, "maxIterations": 10}}

    result = bridge(vams_event(execution.token, params), api_server)

    assert result["statusCode"] == 200, result
    run_id = json.loads(result["body"])["dagRunId"]
    api = HttpApi(api_server)
    run = api.call("GET", f"/dags/isaac-lab-training/dagRuns/{run_id}")
    assert run.status == 200 and run.data["state"] == "queued"
    assert run.data["conf"]["trainingConfig"]["numEnvs"] == 64
    assert run.data["conf"]["vams"] == {"callback": True, "executingUserName": "alice"}
    assert run.data["note"].startswith("VAMS run for alice")
    assert execution.token not in json.dumps(run.data)  # what the UI's run details show
    assert execution.status() == "RUNNING"  # the token waits for the DAG


def test_bad_conf_is_refused_with_400_naming_the_field(api_server: str, moto_url: str) -> None:
    execution = PipelineExecution()
    start_recording(moto_url)
    params = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 0}}

    result = bridge(vams_event(execution.token, params), api_server)

    assert result["statusCode"] == 400, result
    assert "trainingConfig" in json.loads(result["body"])["cause"]
    assert execution.wait_done()["status"] == "FAILED"
    [sent] = recorded_calls(moto_url, "AWSStepFunctions.SendTaskFailure")
    assert sent["cause"].startswith("isaac-lab-training refused the conf (HTTP 400): Invalid input for param "
                                    "trainingConfig")
    assert "0 is less than the minimum of 1" in sent["cause"] and len(sent["cause"]) <= 256


def test_a_raw_token_in_the_conf_is_refused(api_server: str) -> None:
    api = HttpApi(api_server)
    conf = {"trainingConfig": {"task": "T"}, "outputS3Path": "s3://b/o", "vams": {"taskToken": "AAAA-secret"}}
    answer = api.call("POST", "/dags/isaac-lab-training/dagRuns", {"logical_date": None, "conf": conf})
    assert answer.status == 400
    assert "vams" in answer.detail() and "taskToken" in answer.detail()


def test_trigger_cli_prints_run_id_and_link_and_status(api_server: str, tmp_path: Path) -> None:
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 16},
                                "outputS3Path": "s3://b/out"}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(REPO / d) for d in ("plugins", "tools", "vams_bridge"))}
    cli = [sys.executable, "-m", "isaaclab_tools.cli"]
    out = subprocess.run([*cli, "trigger", "--conf", str(conf), "--airflow-url", api_server, "--run-id", "cli-1"],
                         env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "run id: cli-1" in out.stdout
    assert f"link: {api_server}/dags/isaac-lab-training/runs/cli-1" in out.stdout

    st = subprocess.run([*cli, "status", "cli-1", "--airflow-url", api_server], env=env, capture_output=True,
                        text=True)
    assert st.returncode == 0, st.stderr
    assert "run cli-1: queued" in st.stdout

    conf.write_text(json.dumps({"trainingConfig": {"task": "T", "maxIterations": 100001}, "outputS3Path": "s3://b"}))
    bad = subprocess.run([*cli, "trigger", "--conf", str(conf), "--airflow-url", api_server], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert "HTTP 400" in bad.stdout and "trainingConfig" in bad.stdout and "100001" in bad.stdout
    missing = subprocess.run([*cli, "status", "no-such-run", "--airflow-url", api_server], env=env,
                             capture_output=True, text=True)
    assert missing.returncode == 2


def test_dag_is_created_unpaused_and_its_runs_leave_queued(api_server: str) -> None:
    api = HttpApi(api_server)
    assert api.call("GET", "/dags/isaac-lab-training").data["is_paused"] is False
    assert api.call("GET", f"/dags/{CONTROL}").data["is_paused"] is True  # the default is in force
    ours = api.call("POST", "/dags/isaac-lab-training/dagRuns", {
        "logical_date": None, "dag_run_id": "unpaused-1",
        "conf": {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}, "outputS3Path": "s3://b/o"}})
    control = api.call("POST", f"/dags/{CONTROL}/dagRuns", {"logical_date": None, "dag_run_id": "control-1"})
    assert (ours.status, control.status) == (200, 200), (ours.data, control.data)

    proc = subprocess.run([str(AIRFLOW.parent / "python"), "-c", STARTABLE], env=SERVER_ENV, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    startable = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ["isaac-lab-training", "unpaused-1"] in startable
    assert [CONTROL, "control-1"] not in startable
