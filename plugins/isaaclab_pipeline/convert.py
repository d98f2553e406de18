"""Convert step: the staged run's TensorBoard event files → metrics.csv, summary.json, reward_curve.png."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from isaaclab_pipeline import storage

log = logging.getLogger(__name__)

EVENTS_MARKER = "events.out.tfevents"


def convert_staged_run(staging_uri: str, aws_conn_id: str = "aws_default") -> dict[str, Any]:
    """Read every event file under ``{staging}/run`` and write the metrics files to ``{staging}/metrics``.

    :return: counts and the URIs written (the task's XCom).
    :raises FileNotFoundError: if the run left no event file.
    """
    from isaaclab_pipeline.metrics import convert_run

    store = storage.for_uri(staging_uri, aws_conn_id)
    run_uri = storage.join(staging_uri, "run")
    events = [o for o in store.list(run_uri) if EVENTS_MARKER in o.uri.rsplit("/", 1)[-1]]
    if not events:
        raise FileNotFoundError(f"no TensorBoard event files under {run_uri}; did the job write any logs?")
    with tempfile.TemporaryDirectory(prefix="isaaclab-convert-") as tmp:
        root = Path(tmp)
        events_dir = root / staging_uri.rstrip("/").rsplit("/", 1)[-1]  # the job id: it titles the plot
        for obj in events:  # keep relative paths: rank_* folders and restarts stay apart
            store.download(obj.uri, events_dir / storage.relative_key(obj.uri, run_uri))
        result = convert_run(events_dir, root / "metrics")
        for warning in result.warnings:
            log.warning("%s", warning)
        written = []
        for path in sorted((root / "metrics").iterdir()):
            uri = storage.join(staging_uri, "metrics", path.name)
            store.upload(path, uri)
            written.append(uri)
    log.info("Converted %d event file(s): %d scalars, %d steps, %d tags", len(events), result.scalars,
             result.steps, len(result.tags))
    return {"eventFiles": len(events), "scalars": result.scalars, "steps": result.steps,
            "tags": len(result.tags), "files": written}
