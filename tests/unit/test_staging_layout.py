"""The staging folder's names, the checkpoint suffixes and the event-file marker are spelled once
(include/schemas/staging-layout.schema.json) for both sides; the copies kept on purpose agree with it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from isaaclab_pipeline import staging_layout as airflow_side_layout

REPO = Path(__file__).resolve().parents[2]
NAMES = ("SPEC", "PROGRESS", "RESULT", "RUNNER_LOG", "RUN_DIR", "CHECKPOINTS_DIR", "METRICS_DIR", "NODES_DIR",
         "GPU_DIR", "CHECKPOINT_SUFFIXES", "EVENT_FILE_MARKER")
SIDES = ("plugins/isaaclab_pipeline", "task_image/isaaclab_runner", "tools/isaaclab_tools", "vams_bridge/vams_bridge")


def _grep(pattern: str, *exclude: str) -> list[str]:
    """``file:line: text`` of every match in the sides' Python modules, the two layout modules left out."""
    args = ["grep", "-rnE", pattern, "--include=*.py", *SIDES]
    lines = subprocess.run(args, cwd=REPO, capture_output=True, text=True).stdout.splitlines()
    skip = ("plugins/isaaclab_pipeline/staging_layout.py", "task_image/isaaclab_runner/staging_layout.py", *exclude)
    return [line for line in lines if not line.startswith(skip)]


def test_both_sides_read_the_same_names_from_the_shared_schema() -> None:
    from isaaclab_runner import reporter, sync
    from isaaclab_runner import staging_layout as runner_side_layout

    airflow_side = {n: getattr(airflow_side_layout, n) for n in NAMES}
    runner_side = {n: getattr(runner_side_layout, n) for n in NAMES}
    assert airflow_side == runner_side
    schema = json.loads((REPO / "include" / "schemas" / "staging-layout.schema.json").read_text())
    consts = [tuple(c) if isinstance(c, list) else c for c in (v["const"] for v in schema["properties"].values())]
    assert sorted(consts, key=str) == sorted(airflow_side.values(), key=str)
    # the runner's writers use them
    assert (reporter.PROGRESS_NAME, reporter.RESULT_NAME, reporter.LOG_NAME) == (
        airflow_side_layout.PROGRESS, airflow_side_layout.RESULT, airflow_side_layout.RUNNER_LOG)
    assert (sync.CHECKPOINTS_DIR, sync.RUN_DIR, sync.EVENTS_MARKER) == (
        airflow_side_layout.CHECKPOINTS_DIR, airflow_side_layout.RUN_DIR, airflow_side_layout.EVENT_FILE_MARKER)


def test_no_module_spells_a_staging_file_name_itself() -> None:
    """Outside the two layout modules, code names staging files through them (docs and comments may say them)."""
    found = subprocess.run(["grep", "-rnE", r"\"(progress|result|spec)\.json\"|\"runner\.log\"", "--include=*.py",
                            "plugins/isaaclab_pipeline", "task_image/isaaclab_runner"], cwd=REPO, capture_output=True,
                           text=True).stdout.splitlines()
    assert found == []


def test_the_copies_kept_on_purpose_agree() -> None:
    """The TFRecord reader names its marker itself (metrics/ stands alone); the VAMS Lambda ships apart from the
    plugins, so its manifest reader keeps its own suffixes: both equal the schema's."""
    from isaaclab_pipeline.metrics import events
    from isaaclab_pipeline.resolve import PACKAGE_SUFFIXES

    from vams_bridge import manifest

    assert events.EVENT_FILE_MARKER == airflow_side_layout.EVENT_FILE_MARKER
    assert manifest.CHECKPOINT_SUFFIXES == airflow_side_layout.CHECKPOINT_SUFFIXES
    assert manifest.PACKAGE_SUFFIXES == PACKAGE_SUFFIXES


def test_no_module_spells_a_folder_name_or_constant_itself() -> None:
    """Staging folder names are joined through the layout modules; checkpoint suffixes and the event-file marker are
    read from them (the copies above excepted)."""
    folders = _grep(r'storage\.join\([^)]*"(run|checkpoints|metrics|nodes|gpu)"|/ "(metrics|nodes|gpu|checkpoints)"')
    assert folders == []
    constants = _grep(r'events\.out\.tfevents"|"\.pth?", "\.pth?"', "plugins/isaaclab_pipeline/metrics/events.py",
                      "vams_bridge/vams_bridge/manifest.py")
    assert constants == []
