"""Convert step: the staged run's TensorBoard event files → metrics.csv, summary.json, reward_curve.png.

Staged keys come from the job: each one is checked (``storage.check_key``) and downloaded only inside this
step's scratch folder. A corrupt event file does not fail the run: what precedes its bad record is kept, and
``metrics-problems.json`` says which file, where and why, so the checkpoints still publish.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from isaaclab_pipeline import storage
from isaaclab_pipeline.compat import AirflowFailException

log = logging.getLogger(__name__)

EVENTS_MARKER = "events.out.tfevents"


class NoEventFilesError(AirflowFailException, FileNotFoundError):
    """The job left no TensorBoard event file: deterministic, so the step fails without retries."""


def convert_staged_run(staging_uri: str, aws_conn_id: str = "aws_default") -> dict[str, Any]:
    """Read every event file under ``{staging}/run`` and write the metrics files to ``{staging}/metrics``.

    :return: counts, the URIs written and the problems met (the task's XCom).
    :raises NoEventFilesError: if the run left no event file (no retries: it will not appear).
    """
    from isaaclab_pipeline.metrics import convert_run

    store = storage.for_uri(staging_uri, aws_conn_id)
    run_uri = storage.join(staging_uri, "run")
    staged, refused = storage.list_staged(store, run_uri)
    events = {rel: obj for rel, obj in staged.items() if EVENTS_MARKER in rel.rsplit("/", 1)[-1]}
    if not events:
        raise NoEventFilesError(f"no TensorBoard event files under {run_uri}; did the job write any logs? "
                                "(see runner-log.txt in the staging folder)")
    with tempfile.TemporaryDirectory(prefix="isaaclab-convert-") as tmp:
        root = Path(tmp)
        events_dir = root / staging_uri.rstrip("/").rsplit("/", 1)[-1]  # the job id: it titles the plot
        for rel, obj in sorted(events.items()):  # keep relative paths: rank_* folders and restarts stay apart
            store.download(obj.uri, storage.safe_target(events_dir, rel))
        result = convert_run(events_dir, root / "metrics", tolerate_corrupt=True)
        for warning in result.warnings:
            log.warning("%s", warning)
        written = []
        for path in sorted((root / "metrics").iterdir()):
            uri = storage.join(staging_uri, "metrics", path.name)
            store.upload(path, uri)
            written.append(uri)
    problems = result.problems
    for problem in problems:
        log.error("Metrics problem (published in metrics-problems.json): %s at byte %s: %s; kept %s records",
                  problem["file"], problem["offset"], problem["reason"], problem["recordsKept"])
    log.info("Converted %d event file(s): %d scalars, %d steps, %d tags", len(events), result.scalars,
             result.steps, len(result.tags))
    return {"eventFiles": len(events), "scalars": result.scalars, "steps": result.steps,
            "tags": len(result.tags), "files": written, "problems": problems,
            "refusedKeys": [r["key"] for r in refused]}
