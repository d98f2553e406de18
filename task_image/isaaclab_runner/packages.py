"""Env packages: fetch, extract safely, pip-install, and check that the task id is registered."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from isaaclab_runner import storage
from isaaclab_runner.caches import WheelCache

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
                # a package holds files and folders; links and devices are refused here, not left to the data
                # filter, which a symlink chain gets past on Python < 3.12.11 (CVE-2025-4517)
                special = [m.name for m in members if not (m.isfile() or m.isdir())]
                if special:
                    raise PackageError(f"{name}: refusing to extract: {special[0]!r} is a link or a special file "
                                       "(an env package holds only files and folders)")
                tf.extractall(root, filter="data")
    except (tarfile.FilterError, tarfile.ReadError, zipfile.BadZipFile) as exc:
        raise PackageError(f"{name}: refusing to extract: {exc}") from exc
    return root


def _is_project(folder: Path) -> bool:
    """A folder pip can install: a setup.py, or a pyproject.toml with a build system or a [project] table.

    Isaac Lab's template generator writes a tooling-only pyproject.toml at the root of an external project
    (the package lives in ``source/<name>/`` with its own setup.py); that root is not an installable project.
    """
    if (folder / "setup.py").is_file():
        return True
    pyproject = folder / "pyproject.toml"
    if not pyproject.is_file():
        return False
    text = pyproject.read_text(errors="replace")
    return "[build-system]" in text or "[project]" in text


def find_project_root(tree: Path) -> Path:
    """Return the shallowest installable project folder (setup.py, or pyproject.toml that builds).

    :raises PackageError: if the tree holds no installable project, with how to package one.
    """
    found = sorted({p.parent for pattern in ("pyproject.toml", "setup.py") for p in tree.rglob(pattern)},
                   key=lambda p: (len(p.parts), str(p)))
    candidates = [p for p in found if _is_project(p)]
    if not candidates:
        raise PackageError("the env package holds no installable project (a setup.py, or a pyproject.toml with "
                           "[build-system] or [project]); package the project folder: `python -m build --sdist`, "
                           "or `tar -czf pkg.tar.gz .` inside the folder holding setup.py")
    return candidates[0]


@dataclass(frozen=True)
class JobEnvironment:
    """Where one job's env package is installed, and the interpreter and ``isaaclab`` command that see it.

    On Isaac Lab 3 each job gets a virtual environment of its own, layered over the runner's (``create``): two
    local jobs never import each other's version of a package, and the image's ``/opt/venv`` stays read-only for
    the container's non-root user. The runner's site-packages are added through a ``.pth`` file
    (``site.addsitedir``, so their own ``.pth`` files count too) after the job's: what the job installs wins.
    Isaac Lab 2.x runs on Isaac Sim's own Python, which a venv would cut off from Kit: there the job uses the
    runner's environment (``current``).
    """

    python: Path
    site_packages: Path

    @property
    def isaaclab(self) -> Path:
        """The ``isaaclab`` command of this environment (Isaac Lab 3)."""
        return self.python.parent / "isaaclab"

    @classmethod
    def current(cls) -> JobEnvironment:
        """The runner's own environment."""
        return cls(Path(sys.executable), Path(sysconfig.get_paths()["purelib"]))

    @classmethod
    def create(cls, root: Path) -> JobEnvironment:
        """Create the job environment at ``root`` (afresh on a retried attempt); pip comes from the runner's."""
        version = f"python{sys.version_info.major}.{sys.version_info.minor}"
        env = cls(root / "bin" / "python", root / "lib" / version / "site-packages")
        if root.exists():  # a retried attempt starts clean: pip would skip a package the last attempt installed
            shutil.rmtree(root)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        parents = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
        env.site_packages.mkdir(parents=True, exist_ok=True)
        (env.site_packages / "_isaaclab_runner_base.pth").write_text(
            "".join(f"import site; site.addsitedir({p!r})\n" for p in parents))
        # the image's console script, on this interpreter
        env.isaaclab.write_text(f"#!{env.python}\nimport sys\nfrom isaaclab.__main__ import main\n"
                                "sys.exit(main())\n")
        env.isaaclab.chmod(0o755)
        return env


@dataclass(frozen=True)
class InstalledPackage:
    """What installing an env package gave: its distribution, the modules it provides, how they are imported."""

    dist_name: str
    version: str
    modules: list[str]
    entry_point: bool  # True if it declares isaaclab.tasks itself; else the runner registered its modules


def fetch_and_install(uri: str, workdir: Path, env: JobEnvironment, cache: WheelCache | None = None
                      ) -> InstalledPackage:
    """Fetch the env package at ``uri`` and install it into the job environment ``env``.

    A package without an ``isaaclab.tasks`` entry point (the user guide's way: ``gym.register`` in
    ``__init__.py``) gets one from the runner, naming the modules it provides, so every process that looks tasks
    up (the pre-flight check, ``isaaclab train``, evaluate, play, every multi-GPU rank) imports them.

    With a wheel ``cache`` (``caches.WheelCache``), a source package is built into a wheel once, stored by the
    archive's sha256, and every later job with the same archive (a retry, another node, a rerun) installs that
    wheel without building.

    :raises PackageError: if the archive is unsafe, holds no project, or pip fails.
    """
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    archive = storage.download(uri, workdir / "inputs" / name)
    log.info("Fetched env package %s (%d bytes)", uri, archive.stat().st_size)
    tree = None if archive.name.endswith(".whl") else safe_extract(archive, workdir / "env_package")
    project = None if tree is None else find_project_root(tree)
    target = str(archive) if project is None else str(project)
    if project is not None and cache is not None:
        target = str(_cached_build(archive, project, workdir, env, cache) or project)
    report = workdir / "pip-report.json"
    # no build isolation: the build backend is already in the image, and isolation would need an index
    cmd = [str(env.python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
           "--no-build-isolation", "--report", str(report), target]
    log.info("Installing: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    print(proc.stdout[-4000:], flush=True)
    if proc.returncode != 0:
        raise PackageError(f"pip install of the env package failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
                           "\nHint: check its setup.py/pyproject.toml and that its dependencies are installable "
                           "(list them in install_requires).")
    dist = _installed_distribution(report, env)
    modules = provided_modules(dist, project)
    has_entry_point = bool(dist.entry_points.select(group=TASKS_GROUP))
    if not has_entry_point:
        if not modules:
            raise PackageError(f"{dist.metadata['Name']} installs no importable module; check packages= in its "
                               "setup.py (find_packages()) or [tool.setuptools.packages] in pyproject.toml")
        register_modules(env, dist.metadata["Name"], modules)
    installed = InstalledPackage(dist.metadata["Name"], dist.version, modules, has_entry_point)
    log.info("Installed %s %s (modules: %s; %s)", installed.dist_name, installed.version, ", ".join(modules),
             "its own isaaclab.tasks entry point" if has_entry_point else "imported by the runner")
    return installed


def _cached_build(archive: Path, project: Path, workdir: Path, env: JobEnvironment, cache: WheelCache
                  ) -> Path | None:
    """The wheel of ``archive``: from the cache, else built from ``project`` and stored; None if the build fails
    (pip install of the project then reports why)."""
    wheel = cache.get(archive)
    if wheel is not None:
        log.info("Using the cached build %s of %s (no build)", wheel.name, archive.name)
        return wheel
    out = workdir / "wheel"
    cmd = [str(env.python), "-m", "pip", "wheel", "--no-deps", "--no-input", "--disable-pip-version-check",
           "--no-build-isolation", "--wheel-dir", str(out), str(project)]
    log.info("Building: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(out.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        log.warning("building a wheel of %s failed (exit %d); installing the project folder instead:\n%s",
                    archive.name, proc.returncode, proc.stderr[-2000:])
        return None
    stored = cache.put(archive, wheels[0])
    log.info("Built %s%s", wheels[0].name, f"; cached at {stored}" if stored else "")
    return wheels[0]


TASKS_GROUP = "isaaclab.tasks"
SHIM_DIST = "isaaclab_runner_env_package"  # the entry points the runner writes for a package without its own
_NOT_TASK_MODULES = {"test", "tests", "docs", "doc", "examples", "scripts", "benchmarks", "setup", "conftest"}


def _installed_distribution(report: Path, env: JobEnvironment) -> importlib.metadata.Distribution:
    """The distribution pip installed from the archive (the one the user asked for, not a dependency)."""
    items = json.loads(report.read_text()).get("install", [])
    requested = [i for i in items if i.get("requested")] or items
    if not requested:
        raise PackageError("pip installed nothing from the env package (is it already installed in the image?)")
    name = requested[0]["metadata"]["name"]
    dists = list(importlib.metadata.distributions(name=name, path=[str(env.site_packages)]))
    if not dists:
        raise PackageError(f"pip reported installing {name} but it is not in {env.site_packages}")
    return dists[0]


def provided_modules(dist: importlib.metadata.Distribution, project: Path | None = None) -> list[str]:
    """Return the top-level modules ``dist`` provides: ``top_level.txt``, else its RECORD, else the source tree.

    Test, docs and script folders are left out; modules the guide's layout puts beside the package (``agents``)
    stay, since the package's ``__init__`` imports them anyway.
    """
    names: list[str] = []
    top = dist.read_text("top_level.txt")
    if top:
        names = top.split()
    if not names:
        for file in dist.files or []:
            head = file.parts[0]
            if head.endswith((".dist-info", ".data", ".pth")) or head in ("..", "__pycache__"):
                continue
            names.append(head.removesuffix(".py") if len(file.parts) == 1 else head)
    if not names and project is not None:
        names = [p.parent.name for p in project.glob("*/__init__.py")]
    keep = [n for n in dict.fromkeys(names)
            if n.isidentifier() and not n.startswith("_") and n.lower() not in _NOT_TASK_MODULES]
    # the package that registers first (``agents`` and the like are imported by it)
    return sorted(keep, key=lambda n: (n == "agents", n))


def register_modules(env: JobEnvironment, dist_name: str, modules: list[str]) -> None:
    """Declare ``modules`` under Isaac Lab's ``isaaclab.tasks`` entry points in the job environment.

    Isaac Lab 3 imports that group in every process before looking a task up (``load_external_tasks``); a
    second small distribution carries the entry points, since the user's own metadata is theirs.
    """
    info = env.site_packages / f"{SHIM_DIST}-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {SHIM_DIST}\nVersion: 0\nSummary: {dist_name}\n")
    (info / "entry_points.txt").write_text(f"[{TASKS_GROUP}]\n" + "".join(f"{m} = {m}\n" for m in modules))
    (info / "INSTALLER").write_text("isaaclab_runner\n")


_LIST_TASKS = """
import json, importlib.metadata, traceback, gymnasium as gym
import isaaclab_tasks  # noqa: F401  registers the built-in tasks
def ids():
    return {s.id for s in gym.registry.values() if "env_cfg_entry_point" in s.kwargs}
sources, errors, seen = {"isaaclab_tasks": sorted(ids())}, {}, ids()
# the isaaclab.tasks entry points, loaded one at a time as `isaaclab train` does, to tell whose ids are whose
for ep in importlib.metadata.entry_points(group="isaaclab.tasks"):
    dist = ep.dist.name if ep.dist is not None else ep.value
    if dist == "SHIM_DIST":
        dist = ep.dist.metadata["Summary"]
    try:
        ep.load()
    except BaseException:
        errors[f"{dist}: import {ep.value}"] = traceback.format_exc()
        continue
    sources.setdefault(dist, []).extend(sorted(ids() - seen))
    seen = ids()
print(json.dumps({"sources": sources, "errors": errors}))
""".replace("SHIM_DIST", SHIM_DIST)


def tasks_by_source(python: Path | str | None = None) -> dict[str, list[str]]:
    """Return the registered task ids per source: ``isaaclab_tasks`` (the image) and each env package's dist name.

    A fresh interpreter (``python``, default this one) is used, so a package installed a moment ago counts.

    :raises PackageError: if a package's module fails to import, with its traceback and a hint.
    """
    proc = subprocess.run([str(python or sys.executable), "-c", _LIST_TASKS], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PackageError(f"importing the registered tasks failed:\n{proc.stderr[-4000:]}")
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    if doc["errors"]:
        what, trace = next(iter(doc["errors"].items()))
        raise PackageError(f"the env package's module failed to import ({what}):\n{trace[-4000:]}Hint: a "
                           "ModuleNotFoundError names a dependency to add to install_requires in setup.py (or "
                           "dependencies in pyproject.toml); any other error is in the package's own code: "
                           "`pip install .` and `python -c 'import <module>'` beside Isaac Lab reproduce it.")
    return doc["sources"]


def registered_tasks(python: Path | str | None = None) -> list[str]:
    """Return the task ids Isaac Lab's CLI would find (built-in and every installed env package's), sorted."""
    return sorted({t for ids in tasks_by_source(python).values() for t in ids})


def verify_task(task: str, python: Path | str | None = None) -> str:
    """Return the registered id ``task`` stands for (a 2.x id maps to its 3.x alias, with a warning).

    :raises PackageError: with the registered ids and the usual causes, if ``task`` is not registered.
    """
    from isaaclab_runner.isaaclab_cli import resolve_task_id

    tasks = registered_tasks(python)
    resolved = resolve_task_id(task, tasks)
    if resolved is not None:
        if resolved != task:
            print(f"[runner] WARNING: {task!r} is an Isaac Lab 2.x task id; using its Isaac Lab 3 id {resolved!r}",
                  flush=True)
        return resolved
    raise PackageError(
        f"task {task!r} is not registered (gymnasium.error.UnregisteredEnv). Registered ids ({len(tasks)}): "
        f"{', '.join(tasks)}\nHints: check the id's spelling (case-sensitive); the env package's modules are "
        "imported, so gym.register(id=...) must run when its package is imported (in __init__.py); Isaac Lab 3 "
        "ids have no -v0 suffix."
    )
