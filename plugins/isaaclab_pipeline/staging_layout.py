"""The staging folder's names (``include/schemas/staging-layout.schema.json``), shared with the runner."""

from __future__ import annotations

from isaaclab_pipeline.schemas import STAGING_LAYOUT_SCHEMA, load_schema

_NAMES = {k: v["const"] for k, v in load_schema(STAGING_LAYOUT_SCHEMA)["properties"].items()}

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
