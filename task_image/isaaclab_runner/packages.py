"""Env packages: fetch, extract safely, pip-install, and check that the task id is registered."""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import time
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

from isaaclab_runner import legacy_names, storage
from isaaclab_runner.caches import WheelCache

log = logging.getLogger(__name__)

MAX_TOTAL_BYTES = 2 * 1024**3  # an env package is code and a few assets; beyond this it is a mistake or a bomb
MAX_FILES = 20_000
INSTALL_TIMEOUT_S = 600.0  # no GPU waits on a stuck setup.py longer than this by default
INSTALL_TIMEOUT_ENV = "ISAACLAB_RUNNER_INSTALL_TIMEOUT_S"  # the deployment's setting (job definition / local env)


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
        # what `python -m venv --without-pip` does, without starting a second interpreter
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(str(root))
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
    editable: bool = False  # installed in place from the extracted project folder (``pip install -e``)
    project: Path | None = None  # that folder


def fetch_and_install(uri: str, workdir: Path, env: JobEnvironment, cache: WheelCache | None = None,
                      timeout_s: float | None = None) -> InstalledPackage:
    """Fetch the env package at ``uri`` and install it into the job environment ``env``.

    A project folder (an extracted tar.gz or sdist with a ``setup.py`` or ``pyproject.toml``) is installed
    editable, in place, as the user guide says (``pip install -e``): its modules are imported from the extracted
    folder, so data files beside them (``my_custom_env/assets/robot.usda``) are found as after the user's
    ``pip install -e .``, with or without ``package_data``. A wheel is installed as a wheel. The package's
    requirements resolve against the image (:func:`check_requirements`): what the image has is kept, a conflict
    with the image's torch / Isaac Lab stack is refused, anything else is installed with that stack pinned.

    A package without an ``isaaclab.tasks`` entry point (the user guide's way: ``gym.register`` in
    ``__init__.py``) gets one from the runner, naming the modules it provides, so every process that looks tasks
    up (the pre-flight check, ``isaaclab train``, evaluate, play, every multi-GPU rank) imports them.

    With a wheel ``cache`` (``caches.WheelCache``), the editable wheel pip built is kept by the archive's sha256
    (with the project folder's path left open), and every later job with the same archive (a retry, another node,
    a rerun) installs it pointed at its own extracted folder, without building.

    :param timeout_s: the whole install (build and dependencies) is stopped after this many seconds (default:
        the spec's ``installTimeoutS``, passed by the runner; ``$ISAACLAB_RUNNER_INSTALL_TIMEOUT_S``, else
        ``INSTALL_TIMEOUT_S``).
    :raises PackageError: if the archive is unsafe, holds no project, pip fails, a requirement conflicts with the
        image, or the install runs past ``timeout_s``.
    """
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    archive = storage.download(uri, workdir / "inputs" / name)
    log.info("Fetched env package %s (%d bytes)", uri, archive.stat().st_size)
    timeout_s = timeout_s or float(os.environ.get(INSTALL_TIMEOUT_ENV) or INSTALL_TIMEOUT_S)
    pip = _PipRun(env, workdir / "pip-report.json", time.monotonic() + timeout_s, timeout_s)
    if archive.name.endswith(".whl"):
        dist = pip.install(["--no-deps", "--force-reinstall", str(archive)])
        project = None
    else:
        project = find_project_root(safe_extract(archive, workdir / "env_package"))
        dist = _install_project(archive, project, workdir, pip, cache)
    # every distribution's metadata is read only for a package with requirements (0.3-0.7 s in a full image)
    missing = check_requirements(dist, installed_versions(env)) if dist.requires else []
    if missing:  # what the image lacks, with the image's stack pinned so nothing replaces it
        constraints = workdir / "image-constraints.txt"
        constraints.write_text("".join(f"{n}=={v}\n" for n, v in protected_versions(env).items()))
        _pip(env, ["-c", str(constraints), *missing], pip.deadline, timeout_s)
    modules = provided_modules(dist, project)
    has_entry_point = bool(dist.entry_points.select(group=TASKS_GROUP))
    if not has_entry_point:
        if not modules:
            raise PackageError(f"{dist.metadata['Name']} installs no importable module; check packages= in its "
                               "setup.py (find_packages()) or [tool.setuptools.packages] in pyproject.toml")
        register_modules(env, dist.metadata["Name"], modules)
    installed = InstalledPackage(dist.metadata["Name"], dist.version, modules, has_entry_point,
                                 editable=project is not None, project=project)
    log.info("Installed %s %s%s (modules: %s; %s)", installed.dist_name, installed.version,
             f" editable from {project}" if project is not None else "", ", ".join(modules),
             "its own isaaclab.tasks entry point" if has_entry_point else "imported by the runner")
    return installed


@dataclass(frozen=True)
class _PipRun:
    """One install's pip calls: the job environment, pip's report file and the install's deadline."""

    env: JobEnvironment
    report: Path
    deadline: float
    timeout_s: float

    def install(self, args: list[str]) -> importlib.metadata.Distribution:
        """``pip install --report <report> <args>``; the distribution it installed."""
        _pip(self.env, ["--report", str(self.report), *args], self.deadline, self.timeout_s)
        return _installed_distribution(self.report, self.env)


def _install_project(archive: Path, project: Path, workdir: Path, pip: _PipRun,
                     cache: WheelCache | None) -> importlib.metadata.Distribution:
    """Install the extracted ``project`` editable: from the cached editable build of ``archive`` when there is one
    (no build), else with pip, keeping the build in ``cache`` for the next job.

    :raises PackageError: if the project still uses Isaac Lab 2.x names (on 3.x), or pip fails.
    """
    if _isaaclab_major() >= 3:  # before any install: a 2.x name would only fail deep inside the job
        legacy = legacy_names.scan(project)
        if legacy:
            raise PackageError(legacy[0].message() + "".join(f"\n  also {h.file}:{h.line}: {h.old} -> {h.new}"
                                                              for h in legacy[1:]))
    cached = None if cache is None else cache.get(archive, editable=True)
    if cached is not None:
        wheel = relocate_editable(cached, project, workdir / "editable-wheel")
        log.info("Using the cached editable build %s of %s (no build)", cached.name, archive.name)
        dist = unpack_editable(wheel, pip.env, project)
        if dist is None:  # scripts or .data: pip's job (--force-reinstall: the image may hold the package)
            dist = pip.install(["--no-deps", "--force-reinstall", str(wheel)])
        return dist
    dist = pip.install(["--no-deps", "--editable", str(project)])
    if cache is not None:
        built = editable_wheel(dist, pip.env, project, workdir / "editable-wheel")
        stored = cache.put(archive, built, editable=True) if built is not None else None
        log.info("Editable build of %s%s", archive.name, f" cached at {stored}" if stored else " not cached")
    return dist


# the image's stack: a job never replaces these (its own copy would shadow what Isaac Lab was built against)
PROTECTED = ("torch", "torchvision", "torchaudio", "isaaclab", "isaaclab-*", "isaacsim", "isaacsim-*", "rsl-rl-lib",
             "skrl", "rl-games", "warp-lang", "newton", "mujoco-warp", "gymnasium", "numpy")


def isaaclab_version() -> str | None:
    """The image's Isaac Lab version (its ``isaaclab`` distribution), or None."""
    try:
        return importlib.metadata.version("isaaclab")
    except importlib.metadata.PackageNotFoundError:
        return None


def _isaaclab_major() -> int:
    """The image's Isaac Lab major version (0 without Isaac Lab)."""
    try:
        return int(importlib.metadata.version("isaaclab").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return 0


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions(env: JobEnvironment) -> dict[str, str]:
    """Every distribution the job environment sees (its own first, then the image's), by canonical name."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=[str(env.site_packages), *sys.path]):
        out.setdefault(_canonical(dist.metadata["Name"] or ""), dist.version)
    return out


def protected_versions(env: JobEnvironment) -> dict[str, str]:
    """The image's stack (``PROTECTED``) as installed: canonical name → version."""
    return {n: v for n, v in installed_versions(env).items() if any(fnmatch.fnmatch(n, p) for p in PROTECTED)}


def check_requirements(dist: importlib.metadata.Distribution, installed: dict[str, str]) -> list[str]:
    """The package's requirements the image does not satisfy yet (for pip to install).

    :raises PackageError: for a requirement on the image's stack (``PROTECTED``) that its version does not meet,
        naming the package, the requirement and the image's version.
    """
    from packaging.requirements import Requirement

    missing = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _canonical(req.name)
        have = installed.get(name)
        if have is not None and req.specifier.contains(have, prereleases=True) and not req.extras:
            continue
        if any(fnmatch.fnmatch(name, p) for p in PROTECTED):
            what = f"{name} {have}" if have else f"no {name}"
            raise PackageError(
                f"{dist.metadata['Name']} {dist.version} requires {text}, but the image has {what} "
                f"(Isaac Lab {installed.get('isaaclab', '?')}'s stack, which a job cannot replace): relax the "
                f"requirement in install_requires (e.g. {req.name}>={have}) or drop it; the image brings {req.name}"
                if have else f"{dist.metadata['Name']} {dist.version} requires {text}, which is not in this image")
        missing.append(text)
    return missing


def _pip(env: JobEnvironment, args: list[str], deadline: float, timeout_s: float) -> None:
    """``pip install <args>`` in the job environment, stopped (its whole process group) at ``deadline``.

    :raises PackageError: with pip's last output, if pip fails or runs past the deadline.
    """
    # no build isolation: the build backend is already in the image, and isolation would need an index
    cmd = [str(env.python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
           "--no-build-isolation", *args]
    log.info("Installing: %s", " ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # pip and the setup.py it runs
        out, err = proc.communicate()
        raise PackageError(
            f"installing the env package took longer than {timeout_s:.0f}s and was stopped (deployment setting: "
            "the Variable isaaclab_install_timeout_s, or ISAACLAB_RUNNER_INSTALL_TIMEOUT_S); its setup.py or a "
            "dependency's build hangs or waits (on the "
            f"network, on input). Last output:\n{(out + err)[-2000:]}") from None
    print(out[-4000:], flush=True)
    if proc.returncode != 0:
        raise PackageError(f"pip install of the env package failed (exit {proc.returncode}):\n{err[-4000:]}"
                           "\nHint: check its setup.py/pyproject.toml and that its dependencies are installable "
                           "(list them in install_requires).")


PROJECT_PLACEHOLDER = "@@ISAACLAB_RUNNER_PROJECT@@"  # the project folder's path in a cached editable wheel
_REBUILT = ("INSTALLER", "REQUESTED", "direct_url.json", "RECORD")  # written by pip at install time


def editable_wheel(dist: importlib.metadata.Distribution, env: JobEnvironment, project: Path, out: Path
                   ) -> Path | None:
    """The editable install pip just made, as a wheel whose files name ``PROJECT_PLACEHOLDER`` for the project
    folder (each job extracts the package to a folder of its own); None if pip made no PEP 660 install."""
    files = [f for f in dist.files or [] if f.parts[0] != "__pycache__" and ".." not in f.parts
             and f.name not in _REBUILT and not f.name.endswith(".pyc")]
    if not any(f.name.startswith("__editable__") for f in files):
        return None
    members = {}
    for f in files:
        data = (env.site_packages / f).read_bytes()
        members[f.as_posix()] = data.replace(str(project).encode(), PROJECT_PLACEHOLDER.encode())
    return _write_wheel(out, _wheel_name(dist), members)


def relocate_editable(cached: Path, project: Path, out: Path) -> Path:
    """A cached editable wheel pointed at this job's extracted ``project`` folder."""
    with zipfile.ZipFile(cached) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()
                   if not i.filename.endswith("/RECORD") and not i.is_dir()}
    members = {k: v.replace(PROJECT_PLACEHOLDER.encode(), str(project).encode()) for k, v in members.items()}
    return _write_wheel(out, cached.name, members)


def unpack_editable(wheel: Path, env: JobEnvironment, project: Path) -> importlib.metadata.Distribution | None:
    """Install a relocated editable ``wheel`` into the job environment by unpacking it, as pip would, in a few ms.

    pip takes 2-4 s to start and resolve for a wheel of a few kB, and it installs nothing when the image's Python
    already holds the package (it sees the same version "already installed" through the layered site-packages).
    A setuptools editable wheel is a ``.pth``, a finder module and its ``.dist-info``: those are written here, with
    the files pip adds (``INSTALLER``, ``REQUESTED``, ``direct_url.json`` naming ``project`` as editable,
    ``RECORD``). A wheel that is not pure-Python or carries ``.data`` or console scripts returns None: pip's job.
    """
    site = env.site_packages
    with zipfile.ZipFile(wheel) as zf:
        names = [i.filename for i in zf.infolist() if not i.is_dir()]
        infos = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        if len(infos) != 1:
            return None
        info = infos.pop()
        wheel_meta = zf.read(f"{info}/WHEEL").decode() if f"{info}/WHEEL" in names else ""
        entry_points = zf.read(f"{info}/entry_points.txt").decode() if f"{info}/entry_points.txt" in names else ""
        if ("root-is-purelib: true" not in wheel_meta.lower() or any(".data/" in n for n in names)
                or re.search(r"^\[(console_scripts|gui_scripts)\]", entry_points, re.MULTILINE)):
            return None
        if any(n.startswith(("/", "\\")) or ".." in Path(n).parts for n in names):
            raise PackageError(f"{wheel.name}: refusing member with an absolute path or '..'")
        members = {n: zf.read(n) for n in names if n != f"{info}/RECORD"}
    members[f"{info}/INSTALLER"] = b"isaaclab_runner\n"
    members[f"{info}/REQUESTED"] = b""
    members[f"{info}/direct_url.json"] = json.dumps(
        {"url": project.resolve().as_uri(), "dir_info": {"editable": True}}).encode()
    record = []
    for name, data in sorted(members.items()):
        target = site / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    (site / info / "RECORD").write_text("\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    log.info("Installed the cached editable build %s by unpacking it into %s (no pip)", wheel.name, site)
    return importlib.metadata.Distribution.at(site / info)


def _wheel_name(dist: importlib.metadata.Distribution) -> str:
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    return f"{name}-{dist.version}-py3-none-any.whl"


def _write_wheel(out: Path, name: str, members: dict[str, bytes]) -> Path:
    """Write ``members`` as the wheel ``out/name`` with a fresh RECORD (pip checks every file's hash)."""
    info = next(k.split("/", 1)[0] for k in members if k.split("/", 1)[0].endswith(".dist-info"))
    lines = []
    for key, data in sorted(members.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{key},sha256={digest},{len(data)}")
    lines.append(f"{info}/RECORD,,")
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / name
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, data in sorted(members.items()):
            zf.writestr(key, data)
        zf.writestr(f"{info}/RECORD", "\n".join(lines) + "\n")
    return wheel


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


def verify_task(task: str, python: Path | str | None = None, tasks: list[str] | None = None) -> str:
    """Return the registered id ``task`` stands for (a 2.x id maps to its 3.x alias, with a warning).

    :param tasks: the registered ids, when known (an earlier job's list of the same package, from the wheel cache);
        else :func:`registered_tasks` imports them in a fresh ``python``.
    :raises PackageError: with the registered ids and the usual causes, if ``task`` is not registered.
    """
    from isaaclab_runner.isaaclab_cli import resolve_task_id

    tasks = registered_tasks(python) if tasks is None else sorted(tasks)
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
