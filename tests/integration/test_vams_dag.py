"""Real DAG runs (Airflow's dag.test) started the way the VAMS bridge starts them: the task token waits in SSM
(moto), a real Step Functions execution waits on it. Each step's failure, publish included, reaches VAMS exactly
once, naming the step; a tiny real training reaches it as success; the token is in no published file, XCom or
log line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from pipeline_env import ISAACLAB_PYTHON
from vams_aws import PipelineExecution, moto_server, recorded_calls, start_recording

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "isaac-lab-training"
_stamp = [datetime(2020, 1, 1, tzinfo=UTC)]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Moto, a migrated DB, a private pipeline home with the example env, fast polling and no task retries."""
    from pipeline_env import no_retries, scoped_environ, task_policy

    home = tmp_path_factory.mktemp("vams-pipeline")
    with scoped_environ({"ISAACLAB_PIPELINE_HOME": str(home), "AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S": "1",
                         "AIRFLOW_VAR_ISAACLAB_OVERRIDES": '["agent.num_steps_per_env=128"]'}):
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        from isaaclab_tools.cli import EXAMPLE_ENV, package_env

        package_env(EXAMPLE_ENV, home / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz")
        # retries (30 s apart) would only slow these failures down
        with task_policy(no_retries), moto_server() as url:
            yield {"home": home, "moto": url}


def vams_conf(home: Path, **training: Any) -> dict[str, Any]:
    """The conf the bridge sends: VAMS's paths, the run configuration, ``vams.callback`` and no token."""
    return {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 16, "maxIterations": 2,
                               "seed": 5, **training},
            "inputS3AssetFilePath": f"file://{home}/assets/custom_cartpole/",
            "outputS3Path": f"file://{home}/outputs",
            "vams": {"callback": True, "executingUserName": "alice"}}


def run_as_vams(env: dict[str, Any], conf: dict[str, Any]) -> tuple[Any, dict[str, str], PipelineExecution]:
    """Store a real token under the run id the DAG run will get, then run the DAG."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType
    from isaaclab_pipeline.vams.token_store import TokenStore
    from isaaclab_tools.cli import load_dag

    _stamp[0] += timedelta(minutes=1)
    when = _stamp[0]
    run_id = DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=when, run_after=when)
    execution = PipelineExecution()
    TokenStore(boto3.client("ssm")).put(run_id, execution.token)
    start_recording(env["moto"])
    run = load_dag().test(run_after=when, logical_date=when, run_conf=conf)
    assert run.run_id == run_id
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}, execution


def assert_failed_once_at(env: dict[str, Any], run: Any, states: dict[str, str], execution: PipelineExecution,
                          step: str, *cause_has: str) -> str:
    assert str(run.state) == "failed" and states[step] == "failed", states
    assert execution.wait_done()["status"] == "FAILED"
    assert execution.failure()["error"] == f"IsaacLabTraining.{step}Failed"
    [sent] = recorded_calls(env["moto"], "AWSStepFunctions.SendTaskFailure")  # task callback + DAG backstop: 1
    assert sent["cause"].startswith(f"isaac-lab-training step {step} failed: ") and len(sent["cause"]) <= 256
    for text in cause_has:
        assert text in sent["cause"], sent["cause"]
    assert execution.token not in sent["cause"]
    return sent["cause"]


def test_validate_failure(env: dict[str, Any]) -> None:
    conf = vams_conf(env["home"], mode="evaluate")
    conf.pop("inputS3AssetFilePath")
    run, states, execution = run_as_vams(env, conf)
    assert_failed_once_at(env, run, states, execution, "validate_config", "trainingConfig.checkpointPath")


def test_resolve_failure(env: dict[str, Any]) -> None:
    conf = vams_conf(env["home"])
    conf["inputS3AssetFilePath"] = f"file://{env['home']}/assets/nothing-here/"
    run, states, execution = run_as_vams(env, conf)
    assert_failed_once_at(env, run, states, execution, "resolve_inputs")


def test_submit_failure(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", "/nonexistent/python")
    run, states, execution = run_as_vams(env, vams_conf(env["home"]))
    assert_failed_once_at(env, run, states, execution, "submit_job", "/nonexistent/python")


def test_wait_failure(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", "/bin/false")  # the "job" exits 1 at once
    run, states, execution = run_as_vams(env, vams_conf(env["home"]))
    assert_failed_once_at(env, run, states, execution, "wait_for_job")


def test_convert_failure(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", "/bin/true")  # "succeeds" without any logs
    run, states, execution = run_as_vams(env, vams_conf(env["home"]))
    assert_failed_once_at(env, run, states, execution, "convert_tensorboard_logs", "no TensorBoard event files")


def test_publish_failure(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A job that trained and converted, then an output location that cannot be written: VAMS hears of it once,
    and the staged run is kept for a retry."""
    # Stands in for the Isaac Lab interpreter so this test needs no training: it stages a real Isaac Lab event file
    # and a result, as the runner does (the e2e test below runs the real one).
    # resolve_inputs probes that the output is writable, so the location breaks while the job runs: the runner
    # puts a file where the run's output folder goes
    outputs = env["home"] / "outputs-that-break"
    runner = tmp_path / "staging_only_runner"
    runner.write_text(f"""#!{sys.executable}
import json, shutil, sys
from pathlib import Path
spec = json.loads(Path(sys.argv[sys.argv.index("--spec") + 1]).read_text())
staging = Path(spec["stagingUri"].removeprefix("file://"))
shutil.copytree({str(REPO / "tests" / "fixtures" / "isaaclab_events")!r}, staging / "run")
(staging / "result.json").write_text(json.dumps({{"jobId": spec["jobId"], "status": "succeeded", "exitCode": 0}}))
blocked = Path({str(outputs)!r}) / spec["jobId"]
shutil.rmtree(blocked, ignore_errors=True)
blocked.parent.mkdir(parents=True, exist_ok=True)
blocked.write_text("outputs cannot go under a file")
""")
    runner.chmod(0o755)
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", str(runner))
    blocked = outputs
    conf = vams_conf(env["home"])
    conf["outputS3Path"] = f"file://{outputs}"
    run, states, execution = run_as_vams(env, conf)
    assert states["convert_tensorboard_logs"] == "success", states
    assert_failed_once_at(env, run, states, execution, "publish_outputs", str(blocked))
    assert recorded_calls(env["moto"], "AWSStepFunctions.SendTaskSuccess") == []
    from isaaclab_pipeline.config import job_uuid

    staged = env["home"] / "staging" / job_uuid(DAG_ID, run.run_id)
    assert list((staged / "run").glob("events.out.tfevents*")) and (staged / "metrics").is_dir()


@pytest.mark.e2e  # a tiny real Isaac Lab training (~50 s on 2 cores)
def test_success_reports_outputs_and_leaks_the_token_nowhere(env: dict[str, Any], capfd: pytest.CaptureFixture[str],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    assert ISAACLAB_PYTHON.exists(), "the Isaac Lab venv is missing: run `make install`"
    from isaaclab_pipeline.config import job_uuid

    run, states, execution = run_as_vams(env, vams_conf(env["home"]))
    assert str(run.state) == "success", states

    desc = execution.wait_done()
    assert desc["status"] == "SUCCEEDED", [(e["type"], {k: v for k, v in e.items() if k.endswith("Details")})
                                           for e in execution.events()]
    output = json.loads(desc["output"])
    job_id = job_uuid(DAG_ID, run.run_id)
    out = env["home"] / "outputs" / job_id
    assert output["jobId"] == job_id and output["outputS3Path"] == f"file://{out}/"
    assert output["metrics"]["lastStep"] == 1 and "lastMeanReward" in output["metrics"]
    assert recorded_calls(env["moto"], "AWSStepFunctions.SendTaskFailure") == []
    assert len(recorded_calls(env["moto"], "AWSStepFunctions.SendTaskSuccess")) == 1

    # Leak nothing: every published file, every staged/job file, every XCom of the run, every log line
    token = execution.token.encode()
    published = [p for p in out.rglob("*") if p.is_file()]
    assert len(published) > 5 and (out / "manifest.json").exists()
    for root in (out, env["home"] / "staging", env["home"] / "jobs"):
        leaked = [str(p) for p in root.rglob("*") if p.is_file() and token in p.read_bytes()]
        assert leaked == []
    config = json.loads((out / "training-config.json").read_text())
    assert config["vams"] == {"callback": True, "executingUserName": "alice"}

    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcoms = session.query(XComModel).filter(XComModel.run_id == run.run_id).all()
        assert len(xcoms) >= 4
        assert all(execution.token not in json.dumps(x.value, default=str) for x in xcoms)
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "VAMS: sent success for run" in logged and "VAMS: heartbeat sent for run" in logged
    assert execution.token not in logged
    logs = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    if logs.exists():
        assert [str(p) for p in logs.rglob("*") if p.is_file() and token in p.read_bytes()] == []
    # the token is gone from SSM once reported
    ssm = boto3.client("ssm")
    assert ssm.get_parameters_by_path(Path="/isaac-lab-training/vams", Recursive=True)["Parameters"] == []
