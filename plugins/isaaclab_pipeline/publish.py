"""Publish step: lay the staged job out under ``{outputS3Path}/{uuid}/`` and write manifest.json last.

Layout (the seed's, plus what it lost):

    checkpoints/<name>              every checkpoint (.pt/.pth), synced while training (staging checkpoints/) or
                                    in the final run folder (staging run/); one name, one file: see below
    checkpoints/attempt-<n>/<name>  a checkpoint an earlier attempt wrote under a name a later attempt wrote again
    metrics.csv, summary.json, reward_curve.png, metrics-problems.json (event files that could not be read)
    training-config.json            the normalized conf (secrets removed)
    env-params.txt, agent-params.txt, git-<name>.txt, runner-log.txt    text views of params, diffs, log
    tensorboard/                    the raw event files of every attempt
    exported/                       exported policies (policy.pt, policy.onnx)
    videos/<mode>-<name>.mp4        mp4 videos, flat; the mode (train, evaluate, play) leads the name
    evaluation-config.json, episodes.csv    evaluate/play: what was evaluated, one row per episode
                                    (its summary.json, mean/std/min/max of return and length, takes the
                                    top-level name; the convert step's per-tag summary becomes metrics-summary.json)
    run/                            anything else the run wrote, so nothing is lost
    staging/<key>                   a staged file whose place above is taken (never overwritten, never dropped)
    manifest.json                   every file above with size and sha256, the attempts, refused keys; written last

Checkpoints of several attempts (a spot reclaim or SIGTERM, then a retry that resumes): each attempt trains in a
run folder of its own (``<library>/<experiment>/<timestamp>``), and a resumed rsl_rl run saves again under
numbers the interrupted one used (``model_50.pt``). The rule: run folders are ordered oldest to newest (the
final run folder, ``runDir`` of result.json, is the newest; the others by their timestamped names), numbered
as attempts 1..n; for each checkpoint name the newest attempt's file is ``checkpoints/<name>`` and every older
one is ``checkpoints/attempt-<k>/<name>``. Within the final attempt the run folder's copy (staging ``run/``)
wins over the copy synced while it trained.

Staged keys are written by the job (and so by the user's env package): every key goes through
``storage.check_key`` and every download through ``storage.safe_target``; a refused key is listed in the
manifest, never followed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from isaaclab_pipeline import staging_layout, storage

log = logging.getLogger(__name__)

_SECRET_KEY = re.compile(r"token|secret|password|credential", re.IGNORECASE)
RUN_FOLDER_DEPTH = 3  # <library>/<experiment>/<timestamp>[...]: where every library's run folder sits under logs/
FINAL = staging_layout.RUN_DIR  # the group of the final run folder's upload

EVALUATION_SUMMARY = "run/evaluation/summary.json"  # written by the runner's evaluate.py


def output_name(rel: str, evaluation: bool = False) -> str:
    """Map a path relative to the staging folder to its place in the published layout (checkpoints of several
    attempts are placed by :func:`plan_layout`, which may move one under ``checkpoints/attempt-<n>/``).

    :param evaluation: the run is an evaluation (its ``run/evaluation/summary.json`` is the top-level summary).
    """
    path = PurePosixPath(rel)
    parts = path.parts
    if parts[0] == staging_layout.METRICS_DIR:
        return f"metrics-{path.name}" if evaluation and path.name == "summary.json" else path.name
    if rel == staging_layout.RUNNER_LOG:
        return "runner-log.txt"
    if rel == staging_layout.RESULT:
        return "job-result.json"
    if parts[0] == staging_layout.CHECKPOINTS_DIR and path.suffix in staging_layout.CHECKPOINT_SUFFIXES:
        return f"checkpoints/{path.name}"  # synced while training, kept across interrupted attempts
    if parts[0] == staging_layout.NODES_DIR and path.name == staging_layout.RUNNER_LOG and len(parts) == 3:
        return f"runner-log-node{parts[1]}.txt"  # workers of a multi-node job
    if parts[0] != staging_layout.RUN_DIR or len(parts) < 2:
        return f"staging/{rel}"
    inner = PurePosixPath(*parts[1:])
    if inner.parts[0] == "exported":
        return str(inner)
    if inner.parts[0] == "videos":
        # videos/<mode>/<clip>.mp4 -> videos/<mode>-<clip>.mp4: every video directly under videos/
        return "videos/" + "-".join(inner.parts[1:]) if len(inner.parts) > 1 else f"run/{inner}"
    if inner.parts[0] == "evaluation" and len(inner.parts) == 2:
        return inner.name
    if inner.suffix in staging_layout.CHECKPOINT_SUFFIXES:
        # one library per job, so checkpoint names are unique (model_<it>.pt, agent_<step>.pt, nn/<name>.pth)
        return f"checkpoints/{inner.name}"
    if staging_layout.EVENT_FILE_MARKER in inner.name:
        return str(PurePosixPath("tensorboard", inner))
    if inner.parts[0] == "params" and inner.suffix in (".yaml", ".yml"):
        return f"{inner.stem}-params.txt"
    if inner.parts[0] == "git":
        return f"git-{inner.stem}.txt"
    return str(PurePosixPath("run", inner))


def is_checkpoint(rel: str) -> bool:
    """True for a staged checkpoint: synced (``checkpoints/...``) or in the final run folder (``run/...``)."""
    parts = PurePosixPath(rel).parts
    if len(parts) >= 3 and parts[0] == staging_layout.RUN_DIR and parts[1] == "exported":
        return False  # the exported policy (policy.pt) is published under exported/, not as a checkpoint
    return len(parts) >= 2 and parts[0] in (staging_layout.CHECKPOINTS_DIR, staging_layout.RUN_DIR) and rel.endswith(
        staging_layout.CHECKPOINT_SUFFIXES)


def run_folder(rel: str) -> str:
    """The run folder a staged checkpoint came from: ``run`` for the final upload, else the synced key's
    ``<library>/<experiment>/<timestamp>`` (fewer parts when the key is shorter)."""
    parts = PurePosixPath(rel).parts
    if parts[0] == staging_layout.RUN_DIR:
        return FINAL
    return "/".join(parts[1:min(1 + RUN_FOLDER_DEPTH, len(parts) - 1)])


def inside_run_folder(rel: str) -> str:
    """A staged checkpoint's path inside its run folder (``model_50.pt``, ``checkpoints/agent_100.pt``)."""
    parts = PurePosixPath(rel).parts
    if parts[0] == staging_layout.RUN_DIR:
        return "/".join(parts[1:])
    return "/".join(parts[1 + len(PurePosixPath(run_folder(rel)).parts):])


@dataclass
class Layout:
    """Where each staged key is published, and what the attempts were."""

    files: dict[str, str] = field(default_factory=dict)  # published name -> staged key
    attempts: list[dict[str, Any]] = field(default_factory=list)  # [{"attempt", "runFolder", "checkpoints"}]
    superseded: list[dict[str, str]] = field(default_factory=list)  # same checkpoint twice in one attempt


def plan_layout(staged: Mapping[str, float], run_dir: str | None = None, evaluation: bool = False) -> Layout:
    """Decide the published name of every staged key (see the module docstring for the rules).

    :param staged: relative key -> modification time (epoch seconds) of every safe staged key.
    :param run_dir: the final run folder's name (``runDir`` of result.json), if the job reported one.
    :param evaluation: the run is an evaluation.
    """
    layout = Layout()
    groups: dict[str, list[str]] = {}
    for rel in staged:
        if is_checkpoint(rel):
            groups.setdefault(run_folder(rel), []).append(rel)

    def is_final(group: str) -> bool:
        return group == FINAL or (run_dir is not None and PurePosixPath(group).name == run_dir)

    # older run folders by their timestamped names (then upload times); the final one (run/ + its synced copies) last
    older = sorted((g for g in groups if not is_final(g)),
                   key=lambda g: (PurePosixPath(g).name, max(staged[r] for r in groups[g])))
    attempt_of = {g: i for i, g in enumerate(older, 1)}
    attempt_of.update({g: len(older) + 1 for g in groups if is_final(g)})
    for group in sorted(groups, key=lambda g: (attempt_of[g], g)):
        layout.attempts.append({"attempt": attempt_of[group], "runFolder": group, "checkpoints": len(groups[group])})

    # checkpoints: per name, the newest attempt wins (run/ over synced within it); the others move aside
    by_name: dict[str, list[str]] = {}
    for rels in groups.values():
        for rel in rels:
            by_name.setdefault(PurePosixPath(rel).name, []).append(rel)
    for name, rels in sorted(by_name.items()):
        rels.sort(key=lambda r: (attempt_of[run_folder(r)], r.startswith("run/"), r), reverse=True)
        winner, *others = rels
        layout.files[f"checkpoints/{name}"] = winner
        for rel in others:
            attempt = attempt_of[run_folder(rel)]
            target = f"checkpoints/attempt-{attempt}/{name}"
            if attempt == attempt_of[run_folder(winner)]:
                target = f"staging/{rel}"
                if inside_run_folder(rel) == inside_run_folder(winner):
                    layout.superseded.append({"key": rel, "by": winner})  # one checkpoint, staged twice
                    continue
            layout.files[target if target not in layout.files else f"staging/{rel}"] = rel

    # everything else: its name, or staging/<key> when the name is taken (nothing overwritten, nothing dropped)
    for rel in sorted(r for r in staged if not is_checkpoint(r)):
        name = output_name(rel, evaluation)
        if name in layout.files or name in ("manifest.json", "training-config.json"):
            log.warning("staged %s maps to %s, which is taken; publishing it as staging/%s", rel, name, rel)
            name = f"staging/{rel}"
        layout.files[name] = rel
    return layout


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


def _run_dir(store: storage.Storage, staging_uri: str, staged: Mapping[str, storage.StoredObject]) -> str | None:
    """``runDir`` of the staged result.json (the final run folder's name), if readable."""
    if staging_layout.RESULT not in staged:
        return None
    try:
        value = json.loads(store.read_bytes(staged[staging_layout.RESULT].uri) or b"{}").get("runDir")
    except (ValueError, AttributeError) as exc:
        log.warning("result.json under %s is not a JSON object (%s); ordering attempts by folder name", staging_uri,
                    exc)
        return None
    return value if isinstance(value, str) and value else None


def publish_outputs(staging_uri: str, output_root: str, conf: Mapping[str, Any], job_id: str,
                    aws_conn_id: str = "aws_default", *, out_uri: str | None = None,
                    trial: Mapping[str, Any] | None = None, resolved: Mapping[str, Any] | None = None,
                    sent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Copy the staged job to ``{output_root}/{job_id}/`` and write manifest.json last.

    Re-running gives the same files and the same manifest (no timestamps in it), so the step is retryable. A
    manifest left by an earlier publish is removed first, and what this call uploaded is removed again if it
    fails, so the output folder never holds files without a manifest that lists them.

    :param out_uri: publish here instead (a sweep's trial: ``{output}/{sweep uuid}/trials/{trial id}``).
    :param trial: a sweep trial's facts (sweep id, trial id, setting, seed), recorded in training-config.json.
    :param resolved: what the resolve step chose (package and checkpoint source URIs and how, seed, library),
        recorded with the image's Isaac Lab version in training-config.json and evaluation-config.json.
    :param sent: the conf as sent (the form's, REST's or VAMS's), recorded beside the normalized one.
    :return: the output URI, the number of files published and the number of refused staged keys.
    """
    src = storage.for_uri(staging_uri, aws_conn_id)
    out_uri = out_uri or storage.join(output_root, job_id)
    dst = storage.for_uri(out_uri, aws_conn_id)
    manifest_uri = storage.join(out_uri, "manifest.json")
    with tempfile.TemporaryDirectory(prefix="isaaclab-publish-") as tmp:
        scratch = Path(tmp)
        staged, refused = storage.list_staged(src, staging_uri)
        staged.pop(staging_layout.PROGRESS, None)  # a live view for the wait step, not an output
        run_dir = _run_dir(src, staging_uri, staged)
        layout = plan_layout({rel: o.mtime for rel, o in staged.items()}, run_dir, EVALUATION_SUMMARY in staged)
        for attempt in layout.attempts:
            log.info("Checkpoints of attempt %d: %d from %s", attempt["attempt"], attempt["checkpoints"],
                     attempt["runFolder"])
        files_dir = scratch / "files"
        files: dict[str, Path] = {}
        for name, rel in layout.files.items():
            files[name] = src.download(staged[rel].uri, storage.safe_target(files_dir, name))
        _write_configs(files, files_dir, job_id, conf, trial, _resolved_facts(src, staged, resolved), sent)
        if dst.read_bytes(manifest_uri) is not None:
            dst.delete(manifest_uri)  # the old manifest must not vouch for files being replaced
        extra: dict[str, Any] = {"refusedKeys": refused} if refused else {}
        if layout.superseded:
            extra["superseded"] = layout.superseded
        entries = _upload_with_manifest(dst, files, out_uri, scratch,
                                        {"jobId": job_id, "attempts": layout.attempts, **extra})
    if refused:
        log.warning("%d staged key(s) were refused (listed in manifest.json under refusedKeys)", len(refused))
    return {"outputUri": out_uri, "files": len(entries), "refusedKeys": len(refused)}


def _write_configs(files: dict[str, Path], files_dir: Path, job_id: str, conf: Mapping[str, Any],
                   trial: Mapping[str, Any] | None, facts: Mapping[str, Any], sent: Mapping[str, Any] | None) -> None:
    """training-config.json (the conf, the trial, what was resolved, the conf as sent), and an evaluation's
    evaluation-config.json (the runner's record, with container paths, inside the conf and what was resolved)."""
    extra: dict[str, Any] = {"resolved": dict(facts)} if facts else {}
    if sent is not None:
        extra["confAsSent"] = redact(dict(sent))
    config = files_dir / "training-config.json"
    config.write_text(json.dumps({"jobId": job_id, **({"trial": dict(trial)} if trial else {}), **redact(conf),
                                  **extra}, indent=2, sort_keys=True) + "\n")
    files["training-config.json"] = config
    if "evaluation-config.json" in files:
        runner_doc = json.loads(files["evaluation-config.json"].read_text() or "{}")
        checkpoint = facts.get("checkpointUri") or runner_doc.get("checkpoint")
        files["evaluation-config.json"].write_text(json.dumps(
            {"jobId": job_id, **redact(conf), **extra, "checkpoint": checkpoint,
             "checkpointChoice": facts.get("checkpointChoice") or "named in the conf",
             "evaluation": runner_doc}, indent=2, sort_keys=True) + "\n")


def _upload_with_manifest(dst: storage.Storage, files: Mapping[str, Path], out_uri: str, scratch: Path,
                          head: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Upload every file, then manifest.json listing them (size, sha256) after ``head``'s fields; on a failure
    remove what was uploaded, so no file stands without a manifest."""
    entries: list[dict[str, Any]] = []
    uploaded: list[str] = []
    try:
        for name, path in sorted(files.items()):
            uri = storage.join(out_uri, name)
            dst.upload(path, uri)
            uploaded.append(uri)
            entries.append({"path": name, "size": path.stat().st_size, "sha256": _sha256(path)})
        head = dict(head)
        doc: dict[str, Any] = {"jobId": head.pop("jobId"), "files": entries, **head}
        manifest = scratch / "manifest.json"
        manifest.write_text(json.dumps(doc, indent=2) + "\n")
        dst.upload(manifest, storage.join(out_uri, "manifest.json"))
    except Exception:
        _remove(dst, uploaded)
        raise
    return entries


def _resolved_facts(store: storage.Storage, staged: Mapping[str, storage.StoredObject],
                    resolved: Mapping[str, Any] | None) -> dict[str, Any]:
    """What was resolved, with the image's Isaac Lab version the job reported (result.json), secrets removed."""
    facts = dict(redact(dict(resolved or {})))
    if staging_layout.RESULT in staged:
        try:
            doc = json.loads(store.read_bytes(staged[staging_layout.RESULT].uri) or b"{}")
            if isinstance(doc, dict) and doc.get("isaacLabVersion"):
                facts["isaacLabVersion"] = doc["isaacLabVersion"]
        except ValueError:
            pass  # _run_dir already warned
    return facts


def _remove(dst: storage.Storage, uris: list[str]) -> None:
    """Best effort: take back what a failed publish uploaded, so no partial output stays without a manifest."""
    for uri in uris:
        try:
            dst.delete(uri)
        except Exception as exc:
            log.warning("could not remove %s after a failed publish: %s", uri, exc)
