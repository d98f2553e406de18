"""The asset mirror: NVIDIA's Isaac assets a deployment keeps itself, synced into a host cache before Isaac Lab starts.

Built-in tasks load their USD files from NVIDIA's asset server (``https://omniverse-content-production...``), which
a job in private subnets without NAT, or an offline workstation, cannot reach. A deployment that sets an asset
mirror (the Variable ``isaaclab_asset_mirror_uri``: ``s3://bucket/prefix`` on AWS, a folder locally) keeps the
files there, filled by ``mirror_assets`` with a manifest::

    {mirror}/asset-manifest.json                 which files each task needs, with sizes and sha256
    {mirror}/Isaac/IsaacLab/Robots/...            the files, at their paths under NVIDIA's asset root

The runner copies the task's files into a host-level cache (``ISAACLAB_RUNNER_ASSET_CACHE``, default
``~/.cache/isaaclab-runner/assets``; one folder per mirror and asset release), checking each file's sha256,
while the env package installs, and points ``ISAACSIM_ASSET_ROOT`` (read by ``isaaclab.utils.assets``) at it
for every process of the job: every rank and, since each node runs the runner, every node. Files already in the
cache are not fetched again: a release's files never change.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isaaclab_runner import caches, storage

log = logging.getLogger("isaaclab_runner.asset_mirror")

MANIFEST_NAME = "asset-manifest.json"
# the variable isaaclab.utils.assets reads its asset root from (Isaac Lab 3.0.0, _resolve_asset_root)
ASSET_ROOT_ENV = "ISAACSIM_ASSET_ROOT"
# a deployment may name its mirror here instead of in the spec (the spec's assetMirrorUri wins)
MIRROR_URI_ENV = "ISAACLAB_RUNNER_ASSET_MIRROR_URI"
CACHE_DIR_ENV = "ISAACLAB_RUNNER_ASSET_CACHE"
SYNC_BUDGET_S = 600.0  # the job waits at most this long for the task's assets before it fails
PARALLEL_FETCHES = 8


class AssetMirrorError(RuntimeError):
    """The mirror cannot serve the task: unreadable, or files missing or corrupt (names the files and the fix)."""


@dataclass(frozen=True)
class MirrorManifest:
    """What a mirror holds: ``files`` (path under the asset root → size, sha256) and each task's paths."""

    files: Mapping[str, Mapping[str, Any]]
    tasks: Mapping[str, list[str]]
    aliases: Mapping[str, str] = field(default_factory=dict)
    asset_release: str = "unknown"
    isaaclab_version: str = ""
    stand_in: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MirrorManifest:
        """Read the manifest's JSON object (include/schemas/asset-manifest.schema.json)."""
        return cls(files=dict(data.get("files", {})), tasks={k: list(v) for k, v in data.get("tasks", {}).items()},
                   aliases=dict(data.get("aliases", {})), asset_release=str(data.get("assetRelease") or "unknown"),
                   isaaclab_version=str(data.get("isaacLabVersion") or ""), stand_in=bool(data.get("standIn")))

    def task_files(self, task: str) -> list[str] | None:
        """The paths ``task`` needs (its 3.x id or a 2.x alias the mirror recorded), or None if it is not mirrored."""
        from isaaclab_runner.isaaclab_cli import task_candidates

        for candidate in (task, self.aliases.get(task, ""), *task_candidates(task)):
            if candidate in self.tasks:
                return self.tasks[candidate]
        return None


def mirror_uri(spec_value: str | None) -> str | None:
    """The job's mirror: the spec's ``assetMirrorUri``, else ``ISAACLAB_RUNNER_ASSET_MIRROR_URI``, else None."""
    return spec_value or os.environ.get(MIRROR_URI_ENV) or None


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """The host-level asset cache: ``$ISAACLAB_RUNNER_ASSET_CACHE``, else ``~/.cache/isaaclab-runner/assets``."""
    env = os.environ if env is None else env
    if env.get(CACHE_DIR_ENV):
        return Path(env[CACHE_DIR_ENV])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "isaaclab-runner" / "assets"


def read_manifest(uri: str, scratch: Path) -> MirrorManifest:
    """Fetch and parse ``{uri}/asset-manifest.json``.

    :raises AssetMirrorError: naming the mirror and the fix, if it has no readable manifest.
    """
    try:
        path = storage.download(storage.join(uri, MANIFEST_NAME), scratch / MANIFEST_NAME)
        return MirrorManifest.from_dict(json.loads(path.read_text()))
    except Exception as exc:  # noqa: BLE001 - any store or JSON error means the same thing to the user
        raise AssetMirrorError(f"asset mirror {uri}: {MANIFEST_NAME} not read ({type(exc).__name__}: {exc}); fill "
                               "the mirror with `make mirror-assets TASKS=...` or fix the Variable "
                               "isaaclab_asset_mirror_uri") from exc


def _cache_key(uri: str, release: str) -> str:
    # one folder per mirror and release: two deployments' mirrors never mix in a shared host cache
    return f"{release}-{hashlib.sha256(uri.rstrip('/').encode()).hexdigest()[:12]}"


@dataclass
class SyncResult:
    """What a sync did: the asset root it prepared, files fetched and already cached, bytes, seconds."""

    root: Path
    fetched: int = 0
    cached: int = 0
    bytes_fetched: int = 0
    seconds: float = 0.0
    mirrored: bool = True  # False: the task is not in the manifest (nothing synced)

    def summary(self, task: str) -> str:
        """One log line."""
        if not self.mirrored:
            return (f"asset mirror: {task} is not in the mirror's manifest; {ASSET_ROOT_ENV}={self.root} (what "
                    "earlier jobs cached). A built-in task's assets will be missing: `make mirror-assets TASKS=...`")
        return (f"asset mirror: {self.fetched} file(s) fetched ({self.bytes_fetched / 1e6:.1f} MB), {self.cached} "
                f"already cached, in {self.seconds:.2f}s; {ASSET_ROOT_ENV}={self.root}")


def sync_task(uri: str, task: str, scratch: Path, cache: Path | None = None) -> SyncResult:
    """Copy what ``task`` needs from the mirror into the host cache; return the asset root to use.

    :raises AssetMirrorError: if the manifest cannot be read, or a file is missing from the mirror or corrupt.
    """
    started = time.monotonic()
    manifest = read_manifest(uri, scratch)
    root = (cache or cache_root()) / _cache_key(uri, manifest.asset_release)
    root.mkdir(parents=True, exist_ok=True)
    wanted = manifest.task_files(task)
    result = SyncResult(root=root, mirrored=wanted is not None)
    if wanted is None:
        return result
    todo = []
    for rel in wanted:
        meta = manifest.files.get(rel) or {}
        dest = root / rel
        if dest.is_file() and dest.stat().st_size == meta.get("size"):
            result.cached += 1
        else:
            todo.append((rel, meta))

    def fetch(rel: str, meta: Mapping[str, Any]) -> int:
        dest = root / rel
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
        try:
            storage.download(storage.join(uri, rel), tmp)
        except Exception as exc:  # noqa: BLE001 - reported with the path, the fix is the same
            raise AssetMirrorError(f"asset mirror {uri} has no {rel} ({type(exc).__name__}), which {task} needs: "
                                   f"run `make mirror-assets TASKS={task}` against it") from exc
        if meta.get("sha256") and caches.sha256(tmp) != meta["sha256"]:
            tmp.unlink(missing_ok=True)
            raise AssetMirrorError(f"asset mirror {uri}: {rel} does not match its sha256 in {MANIFEST_NAME}; "
                                   "fill the mirror again (`make mirror-assets`)")
        os.replace(tmp, dest)  # atomic: a concurrent job on the host sees the whole file or none
        return dest.stat().st_size

    with concurrent.futures.ThreadPoolExecutor(PARALLEL_FETCHES, thread_name_prefix="asset-fetch") as pool:
        for size in pool.map(lambda item: fetch(*item), todo):
            result.fetched += 1
            result.bytes_fetched += size
    result.seconds = time.monotonic() - started
    return result


class AssetSync:
    """``sync_task`` on a thread, so it overlaps the env package's install; ``wait`` returns the asset root."""

    def __init__(self, uri: str, task: str, scratch: Path, cache: Path | None = None) -> None:
        self.uri, self.task, self.scratch, self.cache = uri, task, scratch, cache
        self.result: SyncResult | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="asset-sync", daemon=True)

    def start(self) -> AssetSync:
        """Start the sync; returns self."""
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = sync_task(self.uri, self.task, self.scratch, self.cache)
        except BaseException as exc:  # noqa: BLE001 - re-raised in wait(), on the runner's thread
            self.error = exc

    def wait(self, timeout: float = SYNC_BUDGET_S) -> SyncResult:
        """Wait for the sync (at most ``timeout`` seconds).

        :raises AssetMirrorError: if it failed or did not finish in time.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssetMirrorError(f"asset mirror {self.uri}: the sync of {self.task}'s assets took more than "
                                   f"{timeout:.0f}s; check the job's access to the mirror (S3 endpoint, role)")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def clear(cache: Path | None = None) -> None:
    """Remove the host cache (a fresh host, for benchmarks and tests)."""
    shutil.rmtree(cache or cache_root(), ignore_errors=True)
