"""Env packages: fetch, extract safely, pip-install, and check that the task id is registered."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from isaaclab_runner import storage

log = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 2 * 1024**3  # an env package is code and a few assets; beyond this it is a mistake or a bomb
MAX_FILES = 20_000


class PackageError(RuntimeError):
    """The env package could not be fetched, extracted, installed or does not register the task."""


def _check_budget(sizes: list[int], name: str) -> None:
    if len(sizes) > MAX_FILES:
        raise PackageError(f"{name}: {len(sizes)} files is over the limit of {MAX_FILES}")
    if sum(sizes) > MAX_TOTAL_BYTES:
        raise PackageError(f"{name}: {sum(sizes)} bytes unpacked is over the limit of {MAX_TOTAL_BYTES}")


def safe_extract(archive: Path, dest: Path) -> Path:
    """Extract a .tar.gz/.tgz/.zip into ``dest``, refusing anything that would land outside it.

    Tar archives go through Python's ``data`` extraction filter (absolute paths, ``..``, links leaving the
    tree and device files are refused); zip members are checked by hand since zipfile has no such filter.
    Sizes and file counts are capped before anything is written.
    """
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    name = archive.name
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                _check_budget([i.file_size for i in infos], name)
                for info in infos:
                    target = (root / info.filename).resolve()
                    is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
                    if info.filename.startswith(("/", "\\")) or not target.is_relative_to(root) or is_link:
                        raise PackageError(f"{name}: refusing member {info.filename!r} (absolute path, '..' or link)")
                zf.extractall(root)
        else:
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                _check_budget([m.size for m in members], name)
                # the data filter would quietly make absolute names relative; a package never has them
                absolute = [m.name for m in members if m.name.startswith(("/", "\\"))]
                if absolute:
                    raise PackageError(f"{name}: refusing to extract: absolute member path {absolute[0]!r}")
                tf.extractall(root, filter="data")
    except (tarfile.FilterError, tarfile.ReadError, zipfile.BadZipFile) as exc:
        raise PackageError(f"{name}: refusing to extract: {exc}") from exc
    return root


def find_project_root(tree: Path) -> Path:
    """Return the shallowest folder holding pyproject.toml or setup.py."""
    candidates = sorted((p.parent for pattern in ("pyproject.toml", "setup.py") for p in tree.rglob(pattern)),
                        key=lambda p: len(p.parts))
    if not candidates:
        raise PackageError("the env package holds no pyproject.toml or setup.py; package the project folder "
                           "(tar -czf pkg.tar.gz -C parent project_folder)")
    return candidates[0]


def fetch_and_install(uri: str, workdir: Path) -> str:
    """Fetch the env package at ``uri``, install it into this interpreter's environment; return what was installed."""
    archive = storage.download(uri, workdir / "inputs" / uri.rstrip("/").rsplit("/", 1)[-1])
    log.info("Fetched env package %s (%d bytes)", uri, archive.stat().st_size)
    target = str(archive) if archive.name.endswith(".whl") else str(find_project_root(
        safe_extract(archive, workdir / "env_package")))
    # no build isolation: the build backend is already in the image, and isolation would need an index
    cmd = [sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
           "--no-build-isolation", target]
    log.info("Installing: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout[-4000:], flush=True)
    if proc.returncode != 0:
        raise PackageError(f"pip install of the env package failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
                           "\nHint: check its pyproject.toml/setup.py and that its dependencies are installable.")
    return target


_LIST_TASKS = """
import json, importlib.metadata, gymnasium as gym
import isaaclab_tasks  # noqa: F401  registers the built-in tasks
def ids():
    return {s.id for s in gym.registry.values() if "env_cfg_entry_point" in s.kwargs}
sources, seen = {"isaaclab_tasks": sorted(ids())}, ids()
# the isaaclab.tasks entry points, loaded one at a time as `isaaclab train` does, to tell whose ids are whose
for ep in importlib.metadata.entry_points(group="isaaclab.tasks"):
    ep.load()
    name = ep.dist.name if ep.dist is not None else ep.value
    sources.setdefault(name, []).extend(sorted(ids() - seen))
    seen = ids()
print(json.dumps(sources))
"""


def tasks_by_source() -> dict[str, list[str]]:
    """Return the registered task ids per source: ``isaaclab_tasks`` (the image) and each env package's dist name.

    A fresh interpreter is used, so a package installed a moment ago counts.
    """
    proc = subprocess.run([sys.executable, "-c", _LIST_TASKS], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageError(f"importing the registered tasks failed:\n{proc.stderr[-4000:]}\nHint: a "
                           "ModuleNotFoundError means the env package imports something not installed; add it to "
                           "its dependencies.")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def registered_tasks() -> list[str]:
    """Return the task ids Isaac Lab's CLI would find (built-in and every installed env package's), sorted."""
    return sorted({t for ids in tasks_by_source().values() for t in ids})


def verify_task(task: str) -> str:
    """Return the registered id ``task`` stands for (a 2.x id maps to its 3.x alias, with a warning).

    Raises:
        PackageError: with the registered ids and the usual causes, if ``task`` is not registered.
    """
    from isaaclab_runner.isaaclab_cli import resolve_task_id

    tasks = registered_tasks()
    resolved = resolve_task_id(task, tasks)
    if resolved is not None:
        if resolved != task:
            print(f"[runner] WARNING: {task!r} is an Isaac Lab 2.x task id; using its Isaac Lab 3 id {resolved!r}",
                  flush=True)
        return resolved
    raise PackageError(
        f"task {task!r} is not registered (gymnasium.error.UnregisteredEnv). Registered ids ({len(tasks)}): "
        f"{', '.join(tasks)}\nHints: the env package must declare [project.entry-points.\"isaaclab.tasks\"] "
        "pointing at the module that calls gym.register(id=...); check the id's spelling; Isaac Lab 3 ids have "
        "no -v0 suffix."
    )
