"""The staging folder's names (``include/schemas/staging-layout.schema.json``), shared with the Airflow side."""

from __future__ import annotations

import json

from isaaclab_runner.jobspec import schema_path

_NAMES = {k: v["const"] for k, v in json.loads(
    (schema_path().parent / "staging-layout.schema.json").read_text())["properties"].items()}

SPEC = _NAMES["spec"]
PROGRESS = _NAMES["progress"]
RESULT = _NAMES["result"]
RUNNER_LOG = _NAMES["runnerLog"]
RUN_DIR = _NAMES["runDir"]
CHECKPOINTS_DIR = _NAMES["checkpointsDir"]
METRICS_DIR = _NAMES["metricsDir"]
NODES_DIR = _NAMES["nodesDir"]
GPU_DIR = _NAMES["gpuDir"]
CHECKPOINT_SUFFIXES: tuple[str, ...] = tuple(_NAMES["checkpointSuffixes"])
EVENT_FILE_MARKER = _NAMES["eventFileMarker"]
