"""Caches that outlive a job, kept at the deployment's cache location (the spec's ``cacheUri`` or
``ISAACLAB_RUNNER_CACHE_URI``: ``s3://bucket/prefix`` in production, a folder locally):

    {cache}/warp/<warp version>/<host key>.tar.gz      Warp's kernel cache (Newton's and Isaac Lab's kernels)
    {cache}/wheels/<sha256 of the package>/<python>-isaaclab<version>-editable/<name>.whl   an env package's
                                                      editable build (its project folder's path left open)
    {cache}/wheels/<sha256 of the package>/<python>-isaaclab<version>/tasks.json   the task ids it registers

Warp compiles every kernel a job uses on first use (73 s on a fresh H200 host for the custom cartpole, 13 s
on a CPU) and keeps the result in its kernel cache (``$WARP_CACHE_PATH/<version>``, else
``~/.cache/warp/<version>``). A Batch job starts on a fresh host with an empty cache; ``KernelCache``
restores it at job start, and saves it back after the job when the job compiled something new. The host key
names what the compiled code depends on: the GPU architecture and driver (``sm90-drv570.86``), else ``cpu``,
and the CPU's architecture and model (CPU kernels are built for the host's instruction set).

Neither cache may block or fail a job: every operation is bounded in time, and a failure is a log line.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from isaaclab_runner import storage

log = logging.getLogger("isaaclab_runner.caches")

RESTORE_BUDGET_S = 120.0  # the job waits at most this long for the kernel cache before starting Isaac Lab
SAVE_BUDGET_S = 120.0  # and at most this long for the save after it


def warp_version() -> str | None:
    """The installed Warp's version (its kernel cache is per version), or None without Warp."""
    try:
        return importlib.metadata.version("warp-lang")
    except importlib.metadata.PackageNotFoundError:
        return None


def warp_cache_dir(version: str, env: Mapping[str, str] | None = None) -> Path:
    """Where Warp keeps its kernels (what ``warp.config.kernel_cache_dir`` resolves to, without importing Warp).

    ``$WARP_CACHE_PATH/<version>``, else the user cache folder: ``$XDG_CACHE_HOME/warp/<version>`` or
    ``~/.cache/warp/<version>`` (Warp's ``appdirs.user_cache_dir("warp", "NVIDIA", version)`` on Linux).
    """
    env = os.environ if env is None else env
    if env.get("WARP_CACHE_PATH"):
        return Path(os.path.realpath(env["WARP_CACHE_PATH"])) / version
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "warp" / version


def host_key() -> str:
    """What compiled kernels depend on: the GPU's architecture and driver (first GPU), and the CPU."""
    cpu = cpu_model()
    cpu_key = f"{platform.machine()}-{hashlib.sha256(cpu.encode()).hexdigest()[:8]}"
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=compute_cap,driver_version", "--format=csv,noheader",
                               "-i", "0"], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return f"cpu-{cpu_key}"
    if proc.returncode != 0 or "," not in proc.stdout:
        return f"cpu-{cpu_key}"
    cap, driver = (p.strip() for p in proc.stdout.strip().splitlines()[0].split(",", 1))
    return f"sm{cap.replace('.', '')}-drv{driver}-{cpu_key}"


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class KernelCache:
    """Warp's kernel cache, restored from and saved to ``{cache}/warp/<version>/<host key>.tar.gz``.

    :param cache_uri: the cache location (``s3://`` or a folder).
    :param scratch: a local folder for the archive.
    :param local_dir: Warp's kernel cache folder (default: ``warp_cache_dir``).
    :param key: the host key (default: ``host_key()``).
    """

    def __init__(self, cache_uri: str, scratch: Path, version: str, local_dir: Path | None = None,
                 key: str | None = None) -> None:
        self.local_dir = local_dir or warp_cache_dir(version)
        self.key = key or host_key()
        self.uri = storage.join(cache_uri, "warp", version, f"{self.key}.tar.gz")
        self.scratch = scratch
        self.restored = 0  # kernel modules the restore added
        self.saved = False
        self.message = ""
        self._remote: set[str] | None = None  # the modules the stored archive holds (None: unknown)
        self._thread: threading.Thread | None = None

    @classmethod
    def for_job(cls, cache_uri: str | None, scratch: Path) -> KernelCache | None:
        """The job's kernel cache, or None without a cache location or without Warp."""
        version = warp_version()
        if not cache_uri or version is None:
            return None
        return cls(cache_uri, scratch, version)

    def start_restore(self) -> KernelCache:
        """Restore on a thread (it overlaps the env package's install); returns self."""
        self._thread = threading.Thread(target=self._restore_quietly, name="kernel-cache-restore", daemon=True)
        self._thread.start()
        return self

    def wait_restored(self, timeout: float = RESTORE_BUDGET_S) -> str:
        """Wait for the restore (at most ``timeout`` seconds); return what happened, for the log."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return f"kernel cache: restore still running after {timeout:.0f}s; starting without it"
        return self.message

    def restore(self) -> str:
        """Fetch the archive and add the kernel modules the local cache lacks; return what happened.

        :raises Exception: whatever the store or the archive raise (``start_restore`` catches them).
        """
        started = time.monotonic()
        self.local_dir.mkdir(parents=True, exist_ok=True)
        if not _exists(self.uri):
            self._remote = set()
            return f"kernel cache: none at {self.uri} yet (this job compiles and saves it)"
        archive = storage.download(self.uri, self.scratch / "kernel-cache.tar.gz")
        remote = set()
        with tempfile.TemporaryDirectory(dir=self.local_dir.parent, prefix=".restore-") as tmp:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            for entry in Path(tmp).iterdir():  # one folder per kernel module: moved in whole, never half written
                remote.add(entry.name)
                target = self.local_dir / entry.name
                if not target.exists():
                    os.replace(entry, target)
                    self.restored += 1
        self._remote = remote
        size = archive.stat().st_size
        archive.unlink()
        return (f"kernel cache: restored {self.restored} kernel modules ({size / 1e6:.1f} MB) from {self.uri} in "
                f"{time.monotonic() - started:.1f}s")

    def save(self, timeout: float = SAVE_BUDGET_S) -> str:
        """Upload the local cache when it holds kernel modules the stored one lacks (the job compiled them, or
        the host had them); return what happened. Never raises."""
        if self._remote is None or (self._thread is not None and self._thread.is_alive()):
            return "kernel cache: not saved (the restore did not finish)"
        new = self._modules() - self._remote
        if not new:
            return "kernel cache: nothing new compiled; not saved"
        outcome: list[str] = []
        worker = threading.Thread(target=lambda: outcome.append(self._save(len(new))), name="kernel-cache-save",
                                  daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            return f"kernel cache: save still running after {timeout:.0f}s; left behind"
        return outcome[0] if outcome else "kernel cache: save failed"

    def _save(self, new: int) -> str:
        started = time.monotonic()
        try:
            archive = self.scratch / "kernel-cache-save.tar.gz"
            archive.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
                for name in sorted(self._modules()):
                    tar.add(self.local_dir / name, arcname=name)
            storage.upload(archive, self.uri)
            size = archive.stat().st_size
            archive.unlink()
            self.saved = True
            return (f"kernel cache: saved {len(self._modules())} kernel modules ({new} new, {size / 1e6:.1f} MB) "
                    f"to {self.uri} in {time.monotonic() - started:.1f}s")
        except Exception as exc:  # a cache must never fail the job
            log.debug("kernel cache save failed", exc_info=True)
            return f"kernel cache: save to {self.uri} failed: {type(exc).__name__}: {exc}"

    def _restore_quietly(self) -> None:
        try:
            self.message = self.restore()
        except Exception as exc:  # a cache must never fail the job
            self.message = f"kernel cache: restore from {self.uri} failed: {type(exc).__name__}: {exc}"

    def _modules(self) -> set[str]:
        """The complete kernel modules in the local cache (Warp's folders; temporary ones left out)."""
        if not self.local_dir.is_dir():
            return set()
        return {p.name for p in self.local_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


class WheelCache:
    """Built env-package wheels by the package archive's sha256, the Python tag and the Isaac Lab version.

    ``{cache}/wheels/<sha256>/<cp312>-isaaclab<version>[-editable]/<wheel>``: a retried attempt, another node, or
    a rerun with the same package installs the wheel without building it. A project folder's build is editable
    (``packages.editable_wheel``); the folder without the suffix holds plain wheels.
    """

    def __init__(self, cache_uri: str, scratch: Path) -> None:
        self.cache_uri = cache_uri
        self.scratch = scratch
        self._digests: dict[str, str] = {}

    @staticmethod
    def environment_tag() -> str:
        """What a built wheel depends on besides the package: the Python and the Isaac Lab the job has."""
        try:
            isaaclab = importlib.metadata.version("isaaclab")
        except importlib.metadata.PackageNotFoundError:
            isaaclab = "none"
        return f"cp{sys.version_info.major}{sys.version_info.minor}-isaaclab{isaaclab}"

    def prefix(self, archive: Path, editable: bool = False) -> str:
        """The cache folder of ``archive``'s wheel (its editable build's with ``editable``)."""
        tag = self.environment_tag() + ("-editable" if editable else "")
        return storage.join(self.cache_uri, "wheels", self._sha256(archive), tag)

    def _sha256(self, archive: Path) -> str:
        """``archive``'s sha256, read once per job (a package with assets may be hundreds of MB)."""
        key = str(archive.resolve())
        if key not in self._digests:
            self._digests[key] = sha256(archive)
        return self._digests[key]

    def get(self, archive: Path, editable: bool = False) -> Path | None:
        """Download the cached wheel of ``archive`` into the scratch folder; None when there is none."""
        try:
            wheels = [u for u in storage.list_uris(self.prefix(archive, editable)) if u.endswith(".whl")]
            if not wheels:
                return None
            return storage.download(wheels[0], self.scratch / "cached-wheel" / wheels[0].rsplit("/", 1)[-1])
        except Exception as exc:  # a cache must never fail the job
            log.warning("wheel cache: lookup of %s failed: %s", archive.name, exc)
            return None

    def put(self, archive: Path, wheel: Path, editable: bool = False) -> str | None:
        """Store ``wheel`` as the build of ``archive``; return its URI (None if the store failed)."""
        uri = storage.join(self.prefix(archive, editable), wheel.name)
        try:
            storage.upload(wheel, uri)
            return uri
        except Exception as exc:  # a cache must never fail the job
            log.warning("wheel cache: storing %s failed: %s", wheel.name, exc)
            return None


    def tasks_uri(self, archive: Path) -> str:
        """Where the task ids ``archive``'s package registers (with this image's) are kept."""
        return storage.join(self.cache_uri, "wheels", self._sha256(archive), self.environment_tag(), TASKS_FILE)

    def get_tasks(self, archive: Path) -> dict[str, list[str]] | None:
        """The registered task ids per source an earlier job with ``archive`` found (``packages.tasks_by_source``),
        or None: the job imports every task module in a fresh interpreter to find them (seconds)."""
        try:
            uri = self.tasks_uri(archive)
            if not _exists(uri):
                return None
            data = json.loads(storage.download(uri, self.scratch / "cached-tasks" / TASKS_FILE).read_text())
            if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
                return data
            return None
        except Exception as exc:  # a cache must never fail the job
            log.warning("wheel cache: task list of %s not read: %s", archive.name, exc)
            return None

    def put_tasks(self, archive: Path, sources: dict[str, list[str]]) -> None:
        """Keep the task ids ``archive``'s package registered in this image, for the next job with it."""
        try:
            path = self.scratch / "tasks-to-cache" / TASKS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(sources, sort_keys=True))
            storage.upload(path, self.tasks_uri(archive))
        except Exception as exc:  # a cache must never fail the job
            log.warning("wheel cache: task list of %s not stored: %s", archive.name, exc)


TASKS_FILE = "tasks.json"


def sha256(path: Path) -> str:
    """The file's sha256, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _exists(uri: str) -> bool:
    if uri.startswith("s3://"):
        bucket, key = storage._split_s3(uri)
        try:
            storage._s3().head_object(Bucket=bucket, Key=key)
            return True
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    return storage._local(uri).is_file()

