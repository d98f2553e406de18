"""The runs view's reads of Airflow's metadata DB: the pipeline's DAG runs, their task instances and the steps'
XComs (the normalized conf of ``validate_config``, the job handles of ``submit_job``, the link values of
``wait_for_job``, the output URIs of ``publish_outputs``); the job steps may be mapped (one map index per trial)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from isaaclab_pipeline.config import DAG_ID

STEPS = ("validate_config", "resolve_inputs", "submit_job", "wait_for_job", "convert_tensorboard_logs",
         "publish_outputs")
TRIAL_STEPS = STEPS[2:]  # mapped per trial when the DAG fans out a sweep
REPORT_STEP = "compare_trials"
LINK_KEYS = ("isaaclab_batch_job", "isaaclab_job_log")  # links.IsaacLabBatchJobLink/IsaacLabJobLogLink keys


@dataclass
class RunRecord:
    """One DAG run as the metadata DB has it."""

    run_id: str
    state: str
    start_date: datetime | None
    end_date: datetime | None
    run_after: datetime | None
    conf: dict[str, Any]
    note: str | None = None
    triggered_by: str | None = None
    # (task id, map index) -> (state, start, end, try number)
    tis: dict[tuple[str, int], tuple[str | None, datetime | None, datetime | None, int]] = field(default_factory=dict)
    # (task id, map index, key) -> value
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)


def fetch_runs(session: Any, limit: int = 25, run_id: str | None = None) -> list[RunRecord]:
    """Read the newest ``limit`` runs of the DAG (or the one ``run_id``) with their task instances and XComs."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(DagRun).where(DagRun.dag_id == DAG_ID)
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    runs = list(session.scalars(query.order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(limit)))
    records = {r.run_id: RunRecord(r.run_id, str(r.state) if r.state else "", r.start_date, r.end_date,
                                   r.run_after, dict(r.conf or {}), _note(r),
                                   getattr(r, "triggering_user_name", None)) for r in runs}
    if not records:
        return []
    rows = session.execute(select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index,
                                  TaskInstance.state, TaskInstance.start_date, TaskInstance.end_date,
                                  TaskInstance.try_number)
                           .where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id.in_(records)))
    for rid, task_id, map_index, state, start, end, tries in rows:
        records[rid].tis[(task_id, map_index)] = (str(state) if state else None, start, end, tries or 0)
    xcoms = session.scalars(select(XComModel).where(
        XComModel.dag_id == DAG_ID, XComModel.run_id.in_(records),
        XComModel.task_id.in_((*STEPS, REPORT_STEP)), XComModel.key.in_(("return_value", *LINK_KEYS))))
    for x in xcoms:
        try:
            value = XComModel.deserialize_value(x)
        except Exception:  # a value this view cannot read is left out, not fatal
            continue
        records[x.run_id].xcoms[(x.task_id, x.map_index, x.key)] = value
    return [records[r.run_id] for r in runs]


def _note(run: Any) -> str | None:
    try:
        return run.note
    except Exception:  # a detached or lazy relationship
        return None
