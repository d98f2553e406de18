"""DAG integrity: parses without errors or heavy imports, reads as the five steps, retries where it should."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STEPS = ["validate_config", "resolve_inputs", "submit_job", "wait_for_job", "convert_tensorboard_logs",
         "publish_outputs"]


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags["isaac-lab-training"]


ROUND_STEPS = [f"trial_round_{r}.{step}" for r in (2, 3) for step in STEPS[2:]]  # successive halving's later rounds


def test_five_steps_in_order(dag) -> None:
    # a sweep's report (a teardown); successive halving's decisions (teardowns of their rounds) and later rounds
    assert {t.task_id for t in dag.tasks} == set(STEPS) | {"compare_trials", "decide_round_2", "decide_round_3"} | set(
        ROUND_STEPS)
    assert dag.get_task("compare_trials").is_teardown and {
        "publish_outputs", "trial_round_2.publish_outputs", "trial_round_3.publish_outputs"} <= dag.get_task(
        "compare_trials").upstream_task_ids
    for r in (2, 3):
        decide = dag.get_task(f"decide_round_{r}")
        assert decide.is_teardown and f"trial_round_{r}.submit_job" in decide.downstream_task_ids
        previous = "publish_outputs" if r == 2 else "trial_round_2.publish_outputs"
        assert previous in decide.upstream_task_ids and decide.retries >= 2
    for upstream, downstream in zip(STEPS, STEPS[1:], strict=False):
        assert downstream in dag.get_task(upstream).downstream_task_ids or upstream in (
            dag.get_task(downstream).upstream_task_ids), f"{upstream} → {downstream}"


def test_schedule_tags_and_retries(dag) -> None:
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: runs only when triggered
    assert dag.tags
    assert dag.get_task("validate_config").retries == 0  # bad input stays bad
    for task_id in [*STEPS[1:], *ROUND_STEPS]:
        assert dag.get_task(task_id).retries >= 2, task_id


def test_params_come_from_the_schema(dag) -> None:
    assert set(dag.params.keys()) >= {"trainingConfig", "computeConfig", "inputS3AssetFilePath", "outputS3Path"}


def test_parsing_imports_nothing_heavy() -> None:
    """MWAA parses every 30 s with a 30 s budget: no torch, tensorboard, boto3 or Isaac Lab at parse time."""
    code = (
        "import sys, time, json\n"
        f"sys.path.insert(0, {str(REPO / 'plugins')!r})\n"
        "t = time.monotonic()\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        "t0 = time.monotonic()\n"
        f"bag = DagBag(dag_folder={str(REPO / 'dags')!r})\n"
        "heavy = [m for m in ('torch', 'tensorboard', 'boto3', 'isaaclab', 'isaaclab_runner', 'matplotlib',"
        " 'numpy') if m in sys.modules]\n"
        "print(json.dumps({'errors': list(bag.import_errors), 'heavy': heavy, 'parse_s': time.monotonic() - t0}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["heavy"] == []
    assert result["parse_s"] < 10
