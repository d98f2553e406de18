"""What a VAMS run leaves for VAMS to ingest besides its files: a preview, asset metadata and a result.

VAMS's end-state step (``processWorkflowExecutionOutput`` in VAMS's ``backend/backend/handlers/workflows/sfn/``)
reads the manifest's output prefixes once the pipeline reported success:

- ``previews``: the first image (``.png .jpg .jpeg .svg .gif``, VAMS's ``ALLOWED_PREVIEW_FILE_EXTENSIONS``) becomes
  the asset's preview: the reward curve of a training, a frame of the first clip of an evaluation with video (needs
  ``ffmpeg`` on the PATH; without it, or without video, a plot of the evaluation's episode returns), a sweep's
  comparison;
- ``metadata``: ``asset.metadata.json``, ``{"type": "metadata", "updateType": "update", "metadata": [{"metadataKey",
  "metadataValue", "metadataValueType"}]}``, is applied to the asset (keys ``isaaclab_*``; values as strings, as
  VAMS's metadata API takes them);
- ``results``: every file is recorded against the execution (its text shown with the execution): the JSON VAMS
  also receives with ``send_task_success``.

Each is optional: a prefix VAMS did not send (VAMS before 2.6) is skipped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_pipeline import storage

log = logging.getLogger(__name__)

PREVIEW_EXTENSIONS = (".png", ".jpg", ".jpeg", ".svg", ".gif")  # VAMS: common/s3PathPatterns.py
METADATA_NAME = "asset.metadata.json"  # VAMS applies this name as asset-level metadata
RESULTS_NAME = "isaac-lab-training.json"
KEY_PREFIX = "isaaclab_"
# what the run's metrics, cost and identity become as asset metadata, in this order
METADATA_FIELDS: tuple[tuple[str, str], ...] = (
    ("jobId", "jobId"), ("outputPath", "outputPath"), ("mode", "mode"), ("task", "task"), ("rlLibrary", "rlLibrary"),
    ("lastMeanReward", "finalMeanReward"), ("lastEpisodeLength", "finalEpisodeLength"),
    ("bestMeanReward", "bestMeanReward"), ("iterations", "iterations"), ("envSteps", "envSteps"),
    ("episodes", "episodes"), ("returnMean", "returnMean"), ("returnStd", "returnStd"),
    ("episodeLengthMean", "episodeLengthMean"), ("successRate", "successRate"),
    ("trials", "trials"), ("bestSetting", "bestSetting"), ("bestFinalMeanReward", "bestFinalMeanReward"),
    ("gpuSeconds", "gpuSeconds"), ("wallSeconds", "wallSeconds"), ("estimatedCostUsd", "estimatedCostUsd"),
    ("instanceType", "instanceType"), ("dagRunId", "dagRunId"),
)


def metadata_document(output: Mapping[str, Any]) -> dict[str, Any]:
    """``asset.metadata.json`` for VAMS from the success output (identity, metrics, cost)."""
    flat: dict[str, Any] = {k: output.get(k) for k in ("jobId", "mode", "task", "rlLibrary", "dagRunId")}
    flat["outputPath"] = f"/{output['jobId']}/" if output.get("jobId") else None  # where the files land in the asset
    flat.update(output.get("metrics") or {})
    flat.update({k: v for k, v in (output.get("cost") or {}).items() if k != "backend"})
    items = []
    for source, key in METADATA_FIELDS:
        value = flat.get(source)
        if value is None or isinstance(value, Mapping | list):
            continue
        kind = "boolean" if isinstance(value, bool) else "number" if isinstance(value, int | float) else "string"
        text = str(value).lower() if kind == "boolean" else str(value)
        items.append({"metadataKey": KEY_PREFIX + key, "metadataValue": text, "metadataValueType": kind})
    return {"type": "metadata", "updateType": "update", "metadata": items}


def _video_frame(video: Path, target: Path) -> Path | None:
    """One frame (at 1 s, else the first) of ``video`` as a PNG, with ffmpeg if it is installed."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        return None
    for at in ("1", "0"):
        try:
            subprocess.run([ffmpeg, "-v", "error", "-y", "-ss", at, "-i", str(video), "-frames:v", "1", str(target)],
                           check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            log.info("VAMS preview: no frame of %s at %s s (%s)", video.name, at, exc)
            continue
        if target.exists() and target.stat().st_size:
            return target
    return None


def _returns_plot(episodes_csv: str, target: Path, title: str) -> Path | None:
    """The evaluation's return per episode as a PNG (matplotlib's Agg canvas, as the reward curve)."""
    rows = list(csv.DictReader(io.StringIO(episodes_csv)))
    returns = [float(r["return"]) for r in rows if r.get("return") not in (None, "")]
    if not returns:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(1, len(returns) + 1), returns, marker="o", linewidth=1)
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(target)
    return target


def preview_image(out_uri: str, store: storage.Storage, scratch: Path, output: Mapping[str, Any]) -> Path | None:
    """The image VAMS shows for the asset: the reward curve, a sweep's comparison, a clip's frame, or a returns plot.

    :param out_uri: the run's published folder.
    :return: a local image file, or None when the run has nothing to show.
    """
    names = {storage.relative_key(o.uri, out_uri): o.uri for o in store.list(out_uri)}
    if output.get("mode", "train") == "train":
        for name in ("reward_curve.png", "comparison.png"):
            if name in names:
                return store.download(names[name], scratch / name)
        return None
    videos = sorted(n for n in names if n.startswith("videos/") and n.endswith(".mp4"))
    if videos:
        frame = _video_frame(store.download(names[videos[0]], scratch / "clip.mp4"), scratch / "evaluation.png")
        if frame:
            return frame
    if "episodes.csv" in names:
        raw = store.read_bytes(names["episodes.csv"]) or b""
        return _returns_plot(raw.decode(), scratch / "evaluation.png", f"{output.get('task', '')} evaluation")
    return None


def write_asset_outputs(outputs: Mapping[str, str], output: Mapping[str, Any], out_uri: str,
                        aws_conn_id: str = "aws_default") -> dict[str, str]:
    """Write the preview, ``asset.metadata.json`` and the result under VAMS's output prefixes.

    :param outputs: the conf's ``vams.outputs`` (``previews``, ``metadata``, ``results`` prefixes; any may be absent).
    :param output: the success output (what ``send_task_success`` carries).
    :param out_uri: the run's published folder (``{outputS3Path}/{uuid}``).
    :return: what was written, by kind.
    :raises Exception: a write failed (VAMS would ingest a partial result; the caller reports the failure).
    """
    written: dict[str, str] = {}
    src = storage.for_uri(out_uri, aws_conn_id)
    with tempfile.TemporaryDirectory(prefix="isaaclab-vams-") as tmp:
        scratch = Path(tmp)
        if outputs.get("previews"):
            image = preview_image(out_uri, src, scratch, output)
            if image is not None:
                target = storage.join(outputs["previews"], image.name)
                storage.for_uri(target, aws_conn_id).upload(image, target)
                written["preview"] = target
            else:
                log.info("VAMS: run %s has no image to preview", output.get("jobId"))
        for kind, name, doc in (("metadata", METADATA_NAME, metadata_document(output)),
                                ("results", RESULTS_NAME, dict(output))):
            if not outputs.get(kind):
                continue
            path = scratch / name
            path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            target = storage.join(outputs[kind], name)
            storage.for_uri(target, aws_conn_id).upload(path, target)
            written[kind] = target
    return written
