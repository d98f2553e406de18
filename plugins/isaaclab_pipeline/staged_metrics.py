"""The convert step on a staged run: its event files → metrics.csv, summary.json, reward_curve.png (through
``metrics/``, which converts any run folder), the job's timings and GPU figures added to summary.json.

Staged keys come from the job: each one is checked (``storage.check_key``) and downloaded only inside this
step's scratch folder. A corrupt event file does not fail the run: what precedes its bad record is kept, and
``metrics-problems.json`` says which file, where and why, so the checkpoints still publish.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from isaaclab_pipeline import staging_layout, storage
from isaaclab_pipeline.compat import AirflowFailException

log = logging.getLogger(__name__)


class NoEventFilesError(AirflowFailException, FileNotFoundError):
    """The job left no TensorBoard event file: deterministic, so the step fails without retries."""


def convert_staged_run(staging_uri: str, aws_conn_id: str = "aws_default") -> dict[str, Any]:
    """Read every event file under ``{staging}/run`` and write the metrics files to ``{staging}/metrics``.

    :return: counts, the URIs written and the problems met (the task's XCom).
    :raises NoEventFilesError: if the run left no event file (no retries: it will not appear).
    """
    from isaaclab_pipeline.metrics import convert_run

    store = storage.for_uri(staging_uri, aws_conn_id)
    run_uri = storage.join(staging_uri, staging_layout.RUN_DIR)
    staged, refused = storage.list_staged(store, run_uri)
    events = {rel: obj for rel, obj in staged.items() if staging_layout.EVENT_FILE_MARKER in rel.rsplit("/", 1)[-1]}
    if not events:
        raise NoEventFilesError(f"no TensorBoard event files under {run_uri}; did the job write any logs? "
                                "(see runner-log.txt in the staging folder)")
    with tempfile.TemporaryDirectory(prefix="isaaclab-convert-") as tmp:
        root = Path(tmp)
        events_dir = root / staging_uri.rstrip("/").rsplit("/", 1)[-1]  # the job id: it titles the plot
        for rel, obj in sorted(events.items()):  # keep relative paths: rank_* folders and restarts stay apart
            store.download(obj.uri, storage.safe_target(events_dir, rel))
        result = convert_run(events_dir, root / staging_layout.METRICS_DIR, tolerate_corrupt=True)
        for warning in result.warnings:
            log.warning("%s", warning)
        _add_job_report(store, staging_uri, root / staging_layout.METRICS_DIR)
        written = []
        for path in sorted((root / staging_layout.METRICS_DIR).iterdir()):
            uri = storage.join(staging_uri, staging_layout.METRICS_DIR, path.name)
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


def _add_job_report(store: storage.Storage, staging_uri: str, out_dir: Path) -> None:
    """Merge each node's GPU samples into ``gpu.csv`` and put the job's timings and GPU figures into
    ``summary.json`` (``timings``: the phases summed over attempts; ``gpu``: peak memory, mean utilisation, a
    hint). A report: what cannot be read is logged and left out."""
    from isaaclab_pipeline import gpu, timings

    summary_path = out_dir / "summary.json"
    try:
        doc = json.loads(summary_path.read_text())
        raw = store.read_bytes(storage.join(staging_uri, staging_layout.RESULT))
        result = json.loads(raw) if raw else {}
        job_timings = timings.run_timings([result.get("timings")]) if isinstance(result, dict) else None
        if job_timings:
            doc["timings"] = job_timings
        staged, _ = storage.list_staged(store, storage.join(staging_uri, staging_layout.GPU_DIR))
        node_files = []
        for rel, obj in sorted(staged.items()):
            if rel.endswith(".csv"):
                target = storage.safe_target(out_dir.parent / staging_layout.GPU_DIR, rel)
                node_files.append(store.download(obj.uri, target))
        if node_files:
            figures = gpu.merge_gpu_csv(node_files, out_dir / gpu.GPU_CSV)
            spec_raw = store.read_bytes(storage.join(staging_uri, staging_layout.SPEC))
            num_envs = (json.loads(spec_raw) if spec_raw else {}).get("numEnvs")
            error = result.get("error") if isinstance(result, dict) else None
            doc["gpu"] = gpu.with_hint(figures, num_envs, error)
        summary_path.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    except Exception as exc:
        log.warning("Timings and GPU figures not added to summary.json: %s: %s", type(exc).__name__, exc)
