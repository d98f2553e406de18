"""The asset mirror, from the Airflow side: before any GPU time, check the mirror can serve a built-in task.

The mirror (the Variable ``isaaclab_asset_mirror_uri``) holds NVIDIA's Isaac assets at their paths under the
asset root and ``asset-manifest.json`` (include/schemas/asset-manifest.schema.json) naming each task's files;
the runner syncs them into a host cache (``isaaclab_runner.asset_mirror``). This side only reads the manifest
and lists the mirror: two requests, whatever the number of tasks and files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from isaaclab_pipeline import storage

MANIFEST_NAME = "asset-manifest.json"  # the runner's isaaclab_runner.asset_mirror.MANIFEST_NAME


class MirrorUnreadableError(ValueError):
    """The mirror has no readable manifest (the message names it and the fix)."""


def _fix(task: str) -> str:
    return f"run `make mirror-assets TASKS={task}` (docs/deploy.md, Asset mirror)"


def read_mirror(mirror_uri: str, aws_conn_id: str | None = "aws_default") -> tuple[dict[str, Any], dict[str, int]]:
    """Return (the manifest, the files the mirror holds: path under it → size).

    :raises MirrorUnreadableError: if the manifest is missing or not JSON.
    """
    store = storage.for_uri(mirror_uri, aws_conn_id)
    raw = store.read_bytes(storage.join(mirror_uri, MANIFEST_NAME))
    if raw is None:
        raise MirrorUnreadableError(f"the asset mirror {mirror_uri} has no {MANIFEST_NAME}: {_fix('<task ids>')}, "
                                    "or unset the Variable isaaclab_asset_mirror_uri")
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise MirrorUnreadableError(f"the asset mirror's {MANIFEST_NAME} is not JSON ({exc}): fill it again, "
                                    f"{_fix('<task ids>')}") from exc
    held = {storage.relative_key(o.uri, mirror_uri): o.size for o in store.list(mirror_uri)}
    return manifest, held


def task_files(manifest: Mapping[str, Any], task: str) -> list[str] | None:
    """The paths ``task`` needs per the manifest (its id, or a 2.x id the mirror recorded as an alias), else None."""
    tasks = manifest.get("tasks") or {}
    for candidate in (task, (manifest.get("aliases") or {}).get(task, ""), task.removesuffix("-v0")):
        if candidate in tasks:
            return list(tasks[candidate])
    return None


def missing_files(manifest: Mapping[str, Any], held: Mapping[str, int], task: str) -> list[str] | None:
    """The task's files the mirror lacks (or holds at another size); None if the manifest has no such task."""
    wanted = task_files(manifest, task)
    if wanted is None:
        return None
    files = manifest.get("files") or {}
    return [p for p in wanted if p not in held or held[p] != files.get(p, {}).get("size", held[p])]


def check_task_assets(mirror_uri: str, task: str, aws_conn_id: str | None = "aws_default") -> str | None:
    """Return why the mirror cannot serve ``task`` (naming the missing paths and the fix), or None if it can."""
    try:
        manifest, held = read_mirror(mirror_uri, aws_conn_id)
    except MirrorUnreadableError as exc:
        return str(exc)
    missing = missing_files(manifest, held, task)
    if missing is None:
        mirrored = ", ".join(sorted(manifest.get("tasks") or {})) or "none"
        return f"the asset mirror {mirror_uri} does not hold {task}'s assets (it holds: {mirrored}): {_fix(task)}"
    if missing:
        wanted = task_files(manifest, task) or []
        return (f"the asset mirror {mirror_uri} lacks {len(missing)} of {task}'s {len(wanted)} asset file(s) "
                f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}): {_fix(task)}")
    return None


def servable(mirror_uri: str, tasks: Iterable[str], aws_conn_id: str | None = "aws_default") -> dict[str, bool]:
    """For each task: can the mirror serve it (in the manifest, every file held)? For ``make list-tasks``."""
    manifest, held = read_mirror(mirror_uri, aws_conn_id)
    return {t: missing_files(manifest, held, t) == [] for t in tasks}
