"""The trigger form's conf through the real DAG (Airflow's dag.test, local backend), then the runs view reading
what the run left in Airflow's DB and the stores: the same XComs, task states and files the view reads on a server.

The job is a stand-in for the runner (the Isaac Lab venv's python replaced by a script that stages what the runner
stages: progress.json, a real TensorBoard event file, a checkpoint, result.json), so this takes seconds; the real
runner is covered by tests/e2e and tests/journeys/test_user_guide.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from isaaclab_pipeline import form
from pipeline_env import scoped_environ, stand_in_runner

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "isaac-lab-training"
RUNNER = '''
for i in (1, 2, 3):
    stage("progress.json", json.dumps({"jobId": spec["jobId"], "state": "training", "iteration": i,
                                       "maxIterations": spec["maxIterations"], "meanReward": float(i)}))
    time.sleep(0.3)
stage_events()
stage("run/model_2.pt", b"checkpoint")
succeed()
'''


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("ui-runs")
    runner = stand_in_runner(home / "fake-python", RUNNER)
    env = {"ISAACLAB_PIPELINE_HOME": str(home), "AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S": "1",
           "AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON": str(runner), "ISAACLAB_KNOWN_TASKS": str(home / "none.json")}
    with scoped_environ(env):
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
        yield home


def test_a_form_run_publishes_its_cost_and_the_runs_view_shows_it(home: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session
    from isaaclab_pipeline.ui import runs
    from isaaclab_pipeline.ui.artifacts import Artifacts
    from isaaclab_pipeline.ui.queries import fetch_runs

    conf = form.form_submission(task="Isaac-Custom-Cartpole-Direct", numEnvs=16, maxIterations=3, seed=7,
                                outputS3Path=f"file://{home}/outputs")
    dag = DagBag(dag_folder=str(REPO / "dags")).get_dag(DAG_ID)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    run = dag.test(run_after=when, logical_date=when, run_conf=conf)
    states = {(ti.task_id, ti.map_index): str(ti.state) for ti in run.get_task_instances()}
    assert str(run.state) == "success", states

    # the published cost: the local job's wall time
    with create_session() as session:
        [record] = fetch_runs(session, run_id=run.run_id)
    view = runs.describe(record, Artifacts(), file_url=lambda r, i, n: f"{r}/{i}/{n}")
    [trial] = view["trials"]
    out = Path(trial["outputUri"].removeprefix("file://"))
    cost = json.loads((out / "cost.json").read_text())
    assert cost["backend"] == "local" and cost["wallSeconds"] > 0.5 and cost["gpuSeconds"] is None
    assert "cost.json" in {f["path"] for f in json.loads((out / "manifest.json").read_text())["files"]}

    # the runs view, from the DB and the stores as the run left them
    assert (view["state"], view["mode"], view["task"], view["rlLibrary"]) == ("success", "train",
                                                                              "Isaac-Custom-Cartpole-Direct", "rsl_rl")
    assert view["numEnvs"] == 16 and view["durationS"] > 0
    assert all(state == "success" for state in view["steps"].values()), view["steps"]
    assert trial["result"]["lastMeanReward"] is not None  # from the published summary.json
    assert len(trial["curve"]) > 1  # the published metrics.csv's mean reward
    assert trial["cost"]["wallSeconds"] == cost["wallSeconds"]
    names = {f["name"] for f in trial["files"]}
    assert {"summary.json", "metrics.csv", "cost.json", "reward_curve.png", "manifest.json"} <= names
