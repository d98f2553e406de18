"""task_image/requirements.lock: the task image's pinned Python environment, complete and in step.

The lock is what ``pip install -r task_image/requirements.txt`` resolved to (the local Isaac Lab venv's freeze),
used as pip constraints by the Dockerfile. Checked here: it satisfies every line of requirements.txt and the
runner's own dependencies; it is closed (every dependency of every locked distribution is locked, at a version
that satisfies it, read from the installed metadata); it holds nothing else; it is the local venv's freeze (so
local runs test what the image holds); and the Isaac Lab 2.x image's lock agrees with it.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "task_image" / "requirements.lock"
LOCK2 = REPO / "task_image" / "requirements-isaaclab2.lock"
REQUIREMENTS = REPO / "task_image" / "requirements.txt"
SITE = REPO / ".venvs" / "isaaclab" / "lib" / "python3.12" / "site-packages"
# the markers of the image's interpreter (linux x86_64, CPython 3.12)
IMAGE_MARKERS = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
                 "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                 "implementation_name": "cpython", "platform_python_implementation": "CPython"}
needs_venv = pytest.mark.skipif(not SITE.is_dir(), reason="needs the Isaac Lab venv (.venvs/isaaclab)")


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
    return [Requirement(line.split("#")[0].strip()) for line in path.read_text().splitlines()
            if line.split("#")[0].strip()]


def _top_level() -> list[Requirement]:
    runner = tomllib.loads((REPO / "task_image" / "pyproject.toml").read_text())["project"]["dependencies"]
    return _requirements(REQUIREMENTS) + [Requirement(r) for r in runner]


def _applies(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**IMAGE_MARKERS, "extra": e}) for e in (extras or {""}))


def test_lock_satisfies_requirements_and_the_runner() -> None:
    pins = _pins(LOCK)
    for req in _top_level():
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in requirements.lock: regenerate it (see its header)"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (str(req), pins[name])
    # the Dockerfile's default Isaac Lab version is the locked one
    default = re.search(r"^ARG ISAACLAB_VERSION=(\S+)", (REPO / "task_image" / "Dockerfile").read_text(), re.M)
    assert pins["isaaclab"] == default.group(1)


@needs_venv
def test_lock_is_closed_and_minimal() -> None:
    pins = _pins(LOCK)
    dists = {canonicalize_name(d.metadata["Name"]): d for d in importlib.metadata.distributions(path=[str(SITE)])}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in _top_level()]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        assert name in dists, f"{name} is locked but not installed in .venvs/isaaclab"
        for raw in dists[name].requires or []:
            dep = Requirement(raw)
            if not _applies(dep, set(extras)):
                continue
            dep_name = canonicalize_name(dep.name)
            assert dep_name in pins, f"{name} needs {dep}, which requirements.lock does not pin"
            assert dep.specifier.contains(Version(pins[dep_name]), prereleases=True), (name, str(dep),
                                                                                        pins[dep_name])
            todo.append((dep_name, frozenset(dep.extras)))
    needed = {name for name, _ in seen}
    assert set(pins) == needed, f"locked but needed by nothing: {sorted(set(pins) - needed)}"


@needs_venv
def test_lock_is_the_local_venv() -> None:
    # `make` installs .venvs/isaaclab from requirements.txt; the image installs the lock: the two must agree
    installed = {canonicalize_name(d.metadata["Name"]): d.version
                 for d in importlib.metadata.distributions(path=[str(SITE)])}
    installed.pop("isaaclab-runner", None)  # the runner is installed from the source tree, not pinned
    installed.pop("pip", None)
    pins = _pins(LOCK)
    drift = {n: (pins.get(n), installed.get(n)) for n in set(pins) | set(installed) if pins.get(n) != installed.get(n)}
    assert not drift, f"requirements.lock vs .venvs/isaaclab (lock, venv): {drift}; regenerate the lock (its header)"


def test_isaaclab2_lock_agrees_with_the_lock() -> None:
    pins, pins2 = _pins(LOCK), _pins(LOCK2)
    assert {"boto3", "botocore", "jsonschema"} <= set(pins2)
    assert pins2 == {n: pins[n] for n in pins2}
    # shared libraries of Isaac Sim's Python are left to the base image
    assert not {"urllib3", "six", "python-dateutil", "attrs", "typing-extensions"} & set(pins2)
    run = (REPO / "task_image" / "Dockerfile.isaaclab2").read_text()
    assert "pip install -c /tmp/requirements-isaaclab2.lock" in run
