"""The two locks: each side's pinned Python environment, complete, minimal, and what `make` installs.

- ``task_image/requirements.lock``: what ``pip install -r task_image/requirements.txt`` resolved to, the pip
  constraints of the task image (task_image/Dockerfile) and of ``.venvs/isaaclab``;
- ``requirements-dev.lock``: what ``pip install -r requirements-dev.txt`` resolved to, the constraints of
  ``.venvs/airflow`` (MWAA installs ``requirements.txt`` under MWAA's own constraints instead).

Checked for each: it satisfies every requirement line (and the runner's own dependencies); it is closed (every
dependency of every locked distribution is locked, at a version that satisfies it, read from the installed
metadata); it holds nothing else; it is the local venv exactly. These hold on any day, whatever the registry
serves, because `make` installs under the lock (checked on its recipes); a venv installed without the lock
drifts as soon as a dependency publishes a release, and the venv checks then fail. The Isaac Lab 2.x image's
lock agrees with the task image's.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK2 = REPO / "task_image" / "requirements-isaaclab2.lock"
# the markers of the image's interpreter (linux x86_64, CPython 3.12); the Airflow venv runs on the same kind
IMAGE_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                 "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                 "implementation_name": "cpython", "platform_python_implementation": "CPython"}


@dataclass(frozen=True)
class Side:
    """One Python environment: its requirement files, its lock and the local venv `make` installs from them."""

    name: str
    requirements: tuple[Path, ...]
    lock: Path
    venv: Path
    # installed from the source tree, not pinned
    unpinned: frozenset[str] = frozenset()

    @property
    def site(self) -> Path:
        return self.venv / "lib" / "python3.12" / "site-packages"


ISAACLAB = Side("isaaclab", (REPO / "task_image" / "requirements.txt",), REPO / "task_image" / "requirements.lock",
                REPO / ".venvs" / "isaaclab", frozenset({"isaaclab-runner"}))
AIRFLOW = Side("airflow", (REPO / "requirements-dev.txt", REPO / "requirements.txt"), REPO / "requirements-dev.lock",
               REPO / ".venvs" / "airflow")
SIDES = pytest.mark.parametrize("side", [ISAACLAB, AIRFLOW], ids=lambda s: s.name)


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].split(";")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version and "*" not in version, f"{path.name}: {raw!r} is not an exact pin"
            pins[canonicalize_name(name)] = version
    return pins


def _requirements(path: Path) -> list[Requirement]:
    lines = (raw.split("#")[0].strip() for raw in path.read_text().splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("-")]  # -r: listed in SIDES


def _top_level(side: Side) -> list[Requirement]:
    reqs = [r for path in side.requirements for r in _requirements(path)]
    if side is ISAACLAB:
        pyproject = tomllib.loads((REPO / "task_image" / "pyproject.toml").read_text())
        reqs += [Requirement(r) for r in pyproject["project"]["dependencies"]]
    return reqs


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**IMAGE_MARKERS, "extra": e}) for e in (extras or {""}))


def _installed(side: Side) -> dict[str, importlib.metadata.Distribution]:
    if not side.site.is_dir():
        pytest.skip(f"needs the {side.name} venv ({side.venv.relative_to(REPO)}: make install)")
    return {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(side.site)])}


@SIDES
def test_lock_satisfies_the_requirements(side: Side) -> None:
    pins = _pins(side.lock)
    top = _top_level(side)
    assert top, side.name
    for req in top:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in {side.lock.name}: regenerate it (make lock LOCK={side.name})"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (str(req), pins[name])


def test_the_dockerfile_default_isaaclab_is_the_locked_one() -> None:
    default = re.search(r"^ARG ISAACLAB_VERSION=(\S+)", (REPO / "task_image" / "Dockerfile").read_text(), re.M)
    assert _pins(ISAACLAB.lock)["isaaclab"] == default.group(1)


@SIDES
def test_lock_is_closed_and_minimal(side: Side) -> None:
    pins = _pins(side.lock)
    dists = _installed(side)
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in _top_level(side)]
    assert todo, side.name
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        assert name in dists, f"{name} is locked but not installed in {side.venv.name}"
        for raw in dists[name].requires or []:
            dep = Requirement(raw)
            if not _applies(dep, set(extras)):
                continue
            dep_name = canonicalize_name(dep.name)
            assert dep_name in pins, f"{name} needs {dep}, which {side.lock.name} does not pin"
            assert dep.specifier.contains(Version(pins[dep_name]), prereleases=True), (name, str(dep),
                                                                                        pins[dep_name])
            todo.append((dep_name, frozenset(dep.extras)))
    needed = {name for name, _ in seen}
    assert set(pins) == needed, f"locked but needed by nothing: {sorted(set(pins) - needed)}"


@SIDES
def test_lock_is_the_local_venv(side: Side) -> None:
    # a venv installed from the requirements alone gets whatever the registry serves today and drifts from here
    installed = {name: d.version for name, d in _installed(side).items()
                 if name not in side.unpinned | {"pip"}}
    pins = _pins(side.lock)
    drift = {n: (pins.get(n), installed.get(n)) for n in set(pins) | set(installed) if pins.get(n) != installed.get(n)}
    assert not drift, (f"{side.lock.name} vs {side.venv.relative_to(REPO)} (lock, venv): {drift}; install with "
                       f"`make install` (it installs under the lock) or regenerate it (make lock LOCK={side.name})")


def _install_recipe(target: Path) -> list[str]:
    # what `make` would run to build this venv from scratch (-B: as on a fresh clone), without running it
    env = {**os.environ, "MAKEFLAGS": ""}
    out = subprocess.run(["make", "-n", "-B", "-C", str(REPO), str(target)], capture_output=True, text=True,
                         env=env, check=True).stdout
    return [line for line in out.splitlines() if " pip install " in f" {line} " or "/pip install" in line]


def test_make_installs_each_venv_under_its_lock() -> None:
    airflow = _install_recipe(AIRFLOW.venv / ".installed")
    assert [line for line in airflow if "-r requirements-dev.txt" in line] == [
        line for line in airflow if "-r requirements-dev.txt -c requirements-dev.lock" in line] != []
    isaaclab = _install_recipe(ISAACLAB.venv / ".installed")
    # exactly as task_image/Dockerfile builds /opt/venv: the requirements under the lock, then the runner alone
    assert any("-r task_image/requirements.txt -c task_image/requirements.lock" in line for line in isaaclab), isaaclab
    runner = [line for line in isaaclab if line.rstrip().endswith("task_image")]
    assert runner and all("--no-deps" in line for line in runner), isaaclab
    assert all(" -r " not in line or " -c " in line for line in airflow + isaaclab), airflow + isaaclab
    docker = (REPO / "task_image" / "Dockerfile").read_text()
    assert "pip install -r /tmp/requirements.txt -c /tmp/requirements.lock" in docker
    assert "pip install --no-deps /src/task_image" in docker


def test_isaaclab2_lock_agrees_with_the_lock() -> None:
    pins, pins2 = _pins(ISAACLAB.lock), _pins(LOCK2)
    assert {"boto3", "botocore", "jsonschema"} <= set(pins2)
    assert pins2 == {n: pins[n] for n in pins2}
    # shared libraries of Isaac Sim's Python are left to the base image
    assert not {"urllib3", "six", "python-dateutil", "attrs", "typing-extensions"} & set(pins2)
    run = (REPO / "task_image" / "Dockerfile.isaaclab2").read_text()
    assert "pip install -c /tmp/requirements-isaaclab2.lock" in run
