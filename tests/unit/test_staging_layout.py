"""The staging folder's names are spelled once (include/schemas/staging-layout.schema.json) for both sides."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from isaaclab_pipeline import staging

REPO = Path(__file__).resolve().parents[2]
NAMES = ("SPEC", "PROGRESS", "RESULT", "RUNNER_LOG", "RUN_DIR", "CHECKPOINTS_DIR", "METRICS_DIR", "NODES_DIR",
         "GPU_DIR")


def test_both_sides_read_the_same_names_from_the_shared_schema() -> None:
    from isaaclab_runner import layout, reporter, sync

    airflow_side = {n: getattr(staging, n) for n in NAMES}
    runner_side = {n: getattr(layout, n) for n in NAMES}
    assert airflow_side == runner_side
    schema = json.loads((REPO / "include" / "schemas" / "staging-layout.schema.json").read_text())
    assert sorted(v["const"] for v in schema["properties"].values()) == sorted(airflow_side.values())
    # the runner's writers use them
    assert (reporter.PROGRESS_NAME, reporter.RESULT_NAME, reporter.LOG_NAME) == (
        layout.PROGRESS, layout.RESULT, layout.RUNNER_LOG)
    assert (sync.CHECKPOINTS_DIR, sync.RUN_DIR) == (layout.CHECKPOINTS_DIR, layout.RUN_DIR)


def test_no_module_spells_a_staging_file_name_itself() -> None:
    """Outside the two layout modules, code names staging files through them (docs and comments may say them)."""
    found = subprocess.run(["grep", "-rnE", r"\"(progress|result|spec)\.json\"|\"runner\.log\"", "--include=*.py",
                            "plugins/isaaclab_pipeline", "task_image/isaaclab_runner"], cwd=REPO, capture_output=True,
                           text=True).stdout.splitlines()
    assert found == []
