"""Publish step: lay the staged job out under ``{outputS3Path}/{uuid}/`` and write manifest.json last.

Layout (the seed's, plus what it lost):

    checkpoints/<name>              every checkpoint (.pt/.pth): synced while training (staging checkpoints/)
                                    and in the final run folder; the run folder's copy wins a name clash
    metrics.csv, summary.json, reward_curve.png
    training-config.json            the normalized conf (secrets removed)
    env-params.txt, agent-params.txt, git-<name>.txt, runner-log.txt    text views of params, diffs, log
    tensorboard/                    the raw event files
    exported/, videos/              exported policies (policy.pt, policy.onnx) and mp4 videos when the run made them
    evaluation-config.json, episodes.csv    evaluate/play: what was evaluated, one row per episode
                                    (its summary.json, mean/std/min/max of return and length, takes the
                                    top-level name; the convert step's per-tag summary becomes metrics-summary.json)
    run/                            anything else the run wrote, so nothing is lost
    manifest.json                   every file above with size and sha256; written last
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from isaaclab_pipeline import storage

CHECKPOINT_SUFFIXES = (".pt", ".pth")
_SECRET_KEY = re.compile(r"token|secret|password|credential", re.IGNORECASE)


EVALUATION_SUMMARY = "run/evaluation/summary.json"  # written by the runner's evaluate.py


def output_name(rel: str, evaluation: bool = False) -> str:
    """Map a path relative to the staging folder to its place in the published layout.

    :param evaluation: the run is an evaluation (its ``run/evaluation/summary.json`` is the top-level summary).
    """
    path = PurePosixPath(rel)
    parts = path.parts
    if parts[0] == "metrics":
        return f"metrics-{path.name}" if evaluation and path.name == "summary.json" else path.name
    if rel == "runner.log":
        return "runner-log.txt"
    if rel == "result.json":
        return "job-result.json"
    if parts[0] == "checkpoints" and path.suffix in CHECKPOINT_SUFFIXES:
        return f"checkpoints/{path.name}"  # synced while training, kept across interrupted attempts
    if parts[0] == "nodes" and path.name == "runner.log":
        return f"runner-log-node{parts[1]}.txt"  # workers of a multi-node job
    if parts[0] != "run":
        return f"staging/{rel}"
    inner = PurePosixPath(*parts[1:])
    if inner.parts[0] in ("exported", "videos"):
        return str(inner)
    if inner.parts[0] == "evaluation" and len(inner.parts) == 2:
        return inner.name
    if inner.suffix in CHECKPOINT_SUFFIXES:
        # one library per job, so checkpoint names are unique (model_<it>.pt, agent_<step>.pt, nn/<name>.pth)
        return f"checkpoints/{inner.name}"
    if "events.out.tfevents" in inner.name:
        return str(PurePosixPath("tensorboard", inner))
    if inner.parts[0] == "params" and inner.suffix in (".yaml", ".yml"):
        return f"{inner.stem}-params.txt"
    if inner.parts[0] == "git":
        return f"git-{inner.stem}.txt"
    return str(PurePosixPath("run", inner))


def redact(value: Any) -> Any:
    """Return ``value`` with every key that looks like a secret (task tokens, passwords) removed."""
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items() if not _SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def publish_outputs(staging_uri: str, output_root: str, conf: Mapping[str, Any], job_id: str,
                    aws_conn_id: str = "aws_default") -> dict[str, Any]:
    """Copy the staged job to ``{output_root}/{job_id}/`` and write manifest.json last.

    Re-running gives the same files and the same manifest (no timestamps in it), so the step is retryable.

    :return: the output URI and the number of files published.
    """
    src = storage.for_uri(staging_uri, aws_conn_id)
    out_uri = storage.join(output_root, job_id)
    dst = storage.for_uri(out_uri, aws_conn_id)
    entries = []
    with tempfile.TemporaryDirectory(prefix="isaaclab-publish-") as tmp:
        scratch = Path(tmp)
        staged = {storage.relative_key(o.uri, staging_uri): o.uri for o in src.list(staging_uri)}
        staged.pop("progress.json", None)  # a live view for the wait step, not an output
        files: dict[str, Path] = {}
        evaluation = EVALUATION_SUMMARY in staged  # its summary.json takes the top-level name
        # synced checkpoints first, so the final run folder's copy of the same checkpoint replaces it
        for rel, uri in sorted(staged.items(), key=lambda kv: (not kv[0].startswith("checkpoints/"), kv[0])):
            name = output_name(rel, evaluation)
            if name in files and not rel.startswith("run/"):
                raise ValueError(f"two staged files map to {name}: refusing to overwrite one with the other")
            files[name] = src.download(uri, scratch / "files" / name)
        config = scratch / "files" / "training-config.json"
        config.write_text(json.dumps({"jobId": job_id, **redact(conf)}, indent=2, sort_keys=True) + "\n")
        files["training-config.json"] = config
        for name, path in sorted(files.items()):
            dst.upload(path, storage.join(out_uri, name))
            entries.append({"path": name, "size": path.stat().st_size, "sha256": _sha256(path)})
        manifest = scratch / "manifest.json"
        manifest.write_text(json.dumps({"jobId": job_id, "files": entries}, indent=2) + "\n")
        dst.upload(manifest, storage.join(out_uri, "manifest.json"))
    return {"outputUri": out_uri, "files": len(entries)}
