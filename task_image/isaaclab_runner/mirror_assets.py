"""Fill an asset mirror with what built-in tasks load from NVIDIA's asset server (``make mirror-assets``).

For each task: build its env config with ``ISAACSIM_ASSET_ROOT`` set to a sentinel, so every asset path the
config holds (``usd_path`` of robots, ground planes, props; textures) starts with it; then follow each USD's
sublayers, references, payloads and asset-valued attributes (``UsdUtils.ExtractExternalReferences``) to the
whole closure. Each file is fetched from the upstream asset root (NVIDIA's, by default the one this Isaac Lab
resolves; or a folder or ``s3://`` prefix) and copied to the mirror, with ``asset-manifest.json``: paths,
sizes, sha256, Isaac Lab's and the asset release's versions. A task the manifest already holds, whose files
the mirror has, is skipped: a second run copies nothing (``--refresh`` walks it again).

Usage (the Isaac Lab environment's Python; also the task image's, as a one-off Batch job with internet)::

    python -m isaaclab_runner.mirror_assets --mirror s3://bucket/isaac-assets --tasks Isaac-Cartpole-v0 Isaac-Ant-v0
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import logging
import os
import posixpath
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

from isaaclab_runner import storage
from isaaclab_runner.asset_mirror import ASSET_ROOT_ENV, MANIFEST_NAME
from isaaclab_runner.caches import sha256

log = logging.getLogger("isaaclab_runner.mirror_assets")

SENTINEL = "/isaaclab-asset-mirror-sentinel"
USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
FETCH_TIMEOUT_S = 120.0


def default_upstream() -> str:
    """The asset root this Isaac Lab resolves without a mirror (NVIDIA's server), read in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k != ASSET_ROOT_ENV}
    out = subprocess.run([sys.executable, "-c", "import isaaclab.utils.assets as a; print(a.NUCLEUS_ASSET_ROOT_DIR)"],
                         capture_output=True, text=True, env=env, timeout=300, check=True)
    return out.stdout.strip().splitlines()[-1]


def _strings(obj: Any, seen: set[int]) -> Iterator[str]:
    """Every string inside a config (dataclass/configclass fields, dicts, lists), each object once."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _strings(value, seen)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _strings(value, seen)
    elif is_dataclass(obj) and not isinstance(obj, type):
        for f in fields(obj):
            yield from _strings(getattr(obj, f.name, None), seen)


def task_asset_paths(task: str) -> tuple[str, list[str]]:
    """Return (registered id, the asset paths under the asset root its env config names).

    Needs ``ISAACSIM_ASSET_ROOT`` = ``SENTINEL`` before Isaac Lab is imported (``main`` sets it).
    """
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401 - registers the built-in tasks

    from isaaclab_runner.isaaclab_cli import resolve_task_id

    registered = resolve_task_id(task, gym.registry.keys())
    if registered is None:
        raise SystemExit(f"mirror-assets: {task!r} is not a registered task (Isaac Lab "
                         f"{importlib.metadata.version('isaaclab')}); `make list-tasks` lists them")
    entry = gym.spec(registered).kwargs["env_cfg_entry_point"]
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        cfg = getattr(importlib.import_module(module), name)()
    else:
        cfg = entry()
    paths = {s[len(SENTINEL) + 1:] for s in _strings(cfg, set()) if s.startswith(SENTINEL + "/")}
    return registered, sorted(paths)


def _fetch(upstream: str, rel: str, dest: Path) -> Path:
    """Copy ``{upstream}/{rel}`` to ``dest``: an http(s) asset server, an ``s3://`` prefix or a folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if upstream.startswith(("http://", "https://")):
        url = upstream.rstrip("/") + "/" + urllib.parse.quote(rel)
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp, dest.open("wb") as out:  # noqa: S310
            shutil.copyfileobj(resp, out)
        return dest
    return storage.download(storage.join(upstream, rel), dest)


def _dependencies(path: Path, rel: str) -> tuple[list[str], list[str]]:
    """(paths under the asset root that the USD file ``path`` at ``rel`` depends on, ones skipped and why)."""
    from pxr import UsdUtils

    sublayers, references, payloads = UsdUtils.ExtractExternalReferences(str(path))
    out, skipped = [], []
    for dep in (*sublayers, *references, *payloads):
        if not dep or "<UDIM>" in dep or "://" in dep and not dep.startswith(SENTINEL):
            skipped.append(f"{dep} (in {rel}: not a file under the asset root)")
            continue
        joined = dep[len(SENTINEL) + 1:] if dep.startswith(SENTINEL + "/") else (
            dep.lstrip("/") if dep.startswith("/") else posixpath.join(posixpath.dirname(rel), dep))
        norm = posixpath.normpath(joined)
        if norm.startswith(".."):
            skipped.append(f"{dep} (in {rel}: outside the asset root)")
            continue
        out.append(norm)
    return out, skipped


def closure(upstream: str, roots: Iterable[str], scratch: Path) -> tuple[dict[str, Path], list[str]]:
    """Fetch ``roots`` and every file they depend on; return (path under the root → local copy, skipped)."""
    got: dict[str, Path] = {}
    skipped: list[str] = []
    todo = list(roots)
    while todo:
        rel = todo.pop()
        if rel in got:
            continue
        local = _fetch(upstream, rel, scratch / rel)
        got[rel] = local
        if rel.lower().endswith(USD_SUFFIXES):
            deps, skip = _dependencies(local, rel)
            skipped += skip
            todo += [d for d in deps if d not in got]
    return got, skipped


def _release(upstream: str) -> str:
    # NVIDIA's roots end in the Isaac Sim asset release (".../Assets/Isaac/6.2"); a folder or bucket names none
    last = upstream.rstrip("/").rsplit("/", 1)[-1]
    return last if last.replace(".", "").isdigit() else "custom"


def mirror_tasks(tasks: Iterable[str], mirror: str, upstream: str, refresh: bool = False,
                 stand_in: bool = False) -> dict[str, Any]:
    """Copy each task's asset closure from ``upstream`` to ``mirror`` and update its manifest; return a report."""
    scratch = Path(tempfile.mkdtemp(prefix="mirror-assets-"))
    try:
        try:
            manifest = json.loads(Path(storage.download(storage.join(mirror, MANIFEST_NAME),
                                                        scratch / MANIFEST_NAME)).read_text())
        except Exception:  # noqa: BLE001 - no manifest yet: a new mirror
            manifest = {"files": {}, "tasks": {}, "aliases": {}}
        held = storage.list_sizes(mirror)
        report: dict[str, Any] = {"copied": [], "skippedTasks": [], "skippedRefs": []}
        for task in tasks:
            registered, roots = task_asset_paths(task)
            if registered != task:
                manifest.setdefault("aliases", {})[task] = registered
            known = manifest["tasks"].get(registered)
            if not refresh and known is not None and all(
                    held.get(p) == manifest["files"].get(p, {}).get("size") for p in known):
                report["skippedTasks"].append(registered)
                continue
            files, skipped = closure(upstream, roots, scratch / "upstream")
            report["skippedRefs"] += skipped
            for rel, local in sorted(files.items()):
                meta = {"size": local.stat().st_size, "sha256": sha256(local)}
                if manifest["files"].get(rel) != meta or held.get(rel) != meta["size"]:
                    storage.upload(local, storage.join(mirror, rel))
                    report["copied"].append(rel)
                    held[rel] = meta["size"]
                manifest["files"][rel] = meta
            manifest["tasks"][registered] = sorted(files)
        before = json.dumps({k: v for k, v in manifest.items() if k != "updated"}, sort_keys=True)
        manifest.update(version=1, isaacLabVersion=importlib.metadata.version("isaaclab"), upstream=upstream,
                        assetRelease="stand-in" if stand_in else _release(upstream), standIn=stand_in)
        if report["copied"] or json.dumps({k: v for k, v in manifest.items() if k != "updated"},
                                          sort_keys=True) != before:
            manifest["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            storage.write_text(storage.join(mirror, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True),
                               scratch / "manifest.out")
        return report
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m isaaclab_runner.mirror_assets --mirror URI --tasks ID... [--upstream URI] [--refresh]``."""
    parser = argparse.ArgumentParser(prog="mirror-assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirror", required=True, help="s3://bucket/prefix or a folder")
    parser.add_argument("--tasks", nargs="+", required=True, help="task ids (2.x ids are mapped to 3.x)")
    parser.add_argument("--upstream", help="the asset root to copy from (default: NVIDIA's, as Isaac Lab resolves)")
    parser.add_argument("--refresh", action="store_true", help="walk tasks the manifest already holds again")
    parser.add_argument("--stand-in", action="store_true",
                        help="the upstream holds generated stand-ins, not NVIDIA's files (recorded in the manifest)")
    args = parser.parse_args(argv)
    upstream = args.upstream or default_upstream()
    os.environ[ASSET_ROOT_ENV] = SENTINEL  # before Isaac Lab is imported: every asset path starts with it
    tasks = [t for arg in args.tasks for t in arg.replace(",", " ").split()]
    report = mirror_tasks(tasks, args.mirror, upstream, args.refresh, args.stand_in)
    for ref in report["skippedRefs"]:
        print(f"skipped {ref}")
    print(f"mirror-assets: {len(report['copied'])} file(s) copied from {upstream} to {args.mirror}; "
          f"{len(report['skippedTasks'])} task(s) already mirrored ({', '.join(report['skippedTasks']) or 'none'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
