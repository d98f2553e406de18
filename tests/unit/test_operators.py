"""operators.py's helpers: a failed job's own error from its staged result.json, and the sweep's cap on jobs at
once (the mapped submit step's other trials whose jobs still run). The operators themselves run in every DAG test."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isaaclab_pipeline.backends.base import JobHandle, JobState, JobStatus
from isaaclab_pipeline.operators import job_error, running_siblings


def test_the_jobs_own_error_comes_from_its_staged_result(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"status": "failed", "error": "  CUDA out of memory\n"}))
    assert job_error(str(tmp_path), None) == "CUDA out of memory"
    (tmp_path / "result.json").write_text(json.dumps({"status": "failed", "error": ""}))
    assert job_error(str(tmp_path), None) is None
    (tmp_path / "result.json").write_text("{not json")
    assert job_error(str(tmp_path), None) is None  # logged; the failure is reported without its cause
    assert job_error(str(tmp_path / "none"), None) is None and job_error(None, None) is None


@dataclass
class TaskInstance:
    """What running_siblings reads of the running task instance: its map index, the mapped task's states and the
    handles its other map indexes pushed."""

    map_index: int
    states: dict[str, str]
    handles: dict[int, dict[str, Any]]
    dag_id: str = "isaac-lab-training"
    task_id: str = "submit_job"
    run_id: str = "manual__1"
    asked: list[Any] = field(default_factory=list)

    def get_task_states(self, dag_id: str, task_ids: list[str], run_ids: list[str]) -> dict[str, dict[str, str]]:
        return {self.run_id: self.states}

    def xcom_pull(self, task_ids: str, map_indexes: list[int]) -> list[dict[str, Any] | None]:
        self.asked.append(map_indexes)
        return [self.handles.get(i) for i in map_indexes]


class Backend:
    """Job states by job id; one job's status cannot be read."""

    name = "local"

    def __init__(self, states: dict[str, JobState]) -> None:
        self.states = states

    def status(self, handle: JobHandle) -> JobStatus:
        if handle.job_id not in self.states:
            raise ConnectionError("backend unreachable")
        return JobStatus(self.states[handle.job_id], "")


def _handle(job: str) -> dict[str, Any]:
    return JobHandle("local", job, f"/jobs/{job}").to_dict()


def test_siblings_still_running_count_against_the_cap() -> None:
    ti = TaskInstance(map_index=3, states={"submit_job_0": "success", "submit_job_1": "success",
                                           "submit_job_2": "success", "submit_job_3": "running",
                                           "submit_job_4": "failed", "other_0": "success"},
                      handles={0: _handle("a"), 1: _handle("b"), 2: _handle("c")})
    backend = Backend({"a": JobState.RUNNING, "b": JobState.SUCCEEDED})  # c: unreadable, counted as running
    assert running_siblings({"ti": ti}, backend) == ["a", "c"]
    assert ti.asked == [[0, 1, 2]]  # only the submitted ones (success), never itself


def test_an_unmapped_task_has_no_siblings() -> None:
    assert running_siblings({"ti": TaskInstance(-1, {}, {})}, Backend({})) == []
    assert running_siblings({}, Backend({})) == []
