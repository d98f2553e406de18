"""The failed job's own cause, where the user looks: the wait step's exception and VAMS's 256-character cause."""

from __future__ import annotations

import json
from pathlib import Path

from airflow.sdk.exceptions import AirflowFailException
from isaaclab_pipeline.operators import job_error


def test_the_wait_step_reads_the_job_s_own_error_from_staging(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"status": "failed", "error": "isaaclab train failed: X"}))
    assert job_error(str(tmp_path), None) == "isaaclab train failed: X"
    assert job_error(str(tmp_path / "nothing-staged"), None) is None


def test_vams_cause_leads_with_the_job_s_error(monkeypatch) -> None:
    from isaaclab_pipeline.vams import callbacks

    sent = {}
    monkeypatch.setattr(callbacks, "report_failure", lambda run_id, step, detail: sent.update(detail=detail))
    monkeypatch.setattr(callbacks, "is_vams_run", lambda conf: True)
    exc = AirflowFailException("isaaclab train failed: FileNotFoundError: robot.usda (exit 1)\nJob x failed: ...")
    callbacks.on_task_failure({"exception": exc, "ti": None, "run_id": "r"})
    assert sent["detail"].startswith("isaaclab train failed: FileNotFoundError: robot.usda")
    cause = callbacks.clip(f"isaac-lab-training step wait_for_job failed: {sent['detail']}")
    assert "FileNotFoundError: robot.usda" in cause and len(cause) <= 256
