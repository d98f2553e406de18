"""The task image's Dockerfiles: hadolint clean, build context complete, one requirements file, the entrypoint.

No Docker engine runs here, so what a build would catch is checked piece by piece: every COPY source exists and
passes the Dockerfile's .dockerignore, the version rewrite of requirements.txt is run for real, and the
entrypoint script is run for real against the Isaac Lab venv's runner.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = [REPO / "task_image" / "Dockerfile", REPO / "task_image" / "Dockerfile.isaaclab2"]
ENTRYPOINT = REPO / "task_image" / "docker" / "entrypoint.sh"


def _hadolint() -> str | None:
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*(\w+)\s+(.*)$", text, re.M)]


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for inst, args in _instructions(dockerfile):
        if inst == "COPY" and "--from=" not in args:
            parts = [p for p in args.split() if not p.startswith("--")]
            sources += parts[:-1]
    return sources


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last matching pattern wins; ``!`` re-includes."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(p, pat.replace("**/", "")) for p in prefixes):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile: Path) -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed: `make dev-tools` installs it into .venvs/airflow")
    proc = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_build_context_holds_every_copy_source(dockerfile: Path) -> None:
    ignore = Path(f"{dockerfile}.dockerignore")
    patterns = [line.strip() for line in ignore.read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    sources = _copy_sources(dockerfile)
    assert {"task_image/isaaclab_runner", "include/schemas"} <= set(sources)  # copied whole (checked below)
    for src in sources:
        assert (REPO / src).exists(), f"{dockerfile.name}: COPY {src} (context = repo root) does not exist"
        files = [src] if (REPO / src).is_file() else [
            p.relative_to(REPO).as_posix() for p in (REPO / src).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts]
        kept = [f for f in files if not _ignored(f, patterns)]
        assert kept, f"{ignore.name} drops everything under {src}"
        if src.startswith(("task_image/isaaclab_runner", "include/schemas")):
            assert kept == files, f"{ignore.name} drops part of {src}"
    # nothing heavy reaches the daemon
    for heavy in (".venvs/airflow/bin/python", ".local/x", "dist/mwaa/plugins.zip", "tests/conftest.py"):
        assert _ignored(heavy, patterns), heavy


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_runtime_contract(dockerfile: Path) -> None:
    insts = _instructions(dockerfile)
    last_from = max(i for i, (inst, _) in enumerate(insts) if inst == "FROM")
    final = insts[last_from:]
    users = [args for inst, args in final if inst == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), "the image must run as a non-root user"
    assert ("ENTRYPOINT", '["/usr/local/bin/isaaclab-entrypoint"]') in final
    env = " ".join(args for inst, args in final if inst == "ENV")
    schemas_dir = re.search(r"ISAACLAB_RUNNER_SCHEMAS_DIR=(\S+)", env).group(1)
    assert f"COPY include/schemas {schemas_dir}" in [f"{i} {a}" for i, a in insts]


def test_requirements_file_is_the_single_source() -> None:
    insts = _instructions(DOCKERFILES[0])
    assert ("COPY", "task_image/requirements.txt task_image/requirements.lock /tmp/") in insts
    runs = " ".join(args for inst, args in insts if inst == "RUN")
    assert "pip install -r /tmp/requirements.txt -c /tmp/requirements.lock" in runs
    assert "pip install --no-deps /src/task_image" in runs
    assert "pip check" in runs  # a lock that no longer resolves consistently fails the build
    # the build argument's default is the version requirements.txt pins (local venv == image)
    default = re.search(r"^ARG ISAACLAB_VERSION=(\S+)", DOCKERFILES[0].read_text(), re.M).group(1)
    pin = re.search(r"^isaaclab(\[[^\]]*\])?==(\S+)", (REPO / "task_image" / "requirements.txt").read_text(), re.M)
    assert pin and pin.group(2) == default


def _pip_step(tmp_path: Path) -> tuple[str, Path]:
    """The Dockerfile's requirements RUN step on copies of its files, with a ``pip`` that records its arguments."""
    run = next(args for inst, args in _instructions(DOCKERFILES[0])
               if inst == "RUN" and "ISAACLAB_VERSION" in args and "sed" in args)
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "pip").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "pip.log"}\n')
    (fake / "pip").chmod(0o755)
    shutil.copy(REPO / "task_image" / "requirements.lock", tmp_path / "requirements.lock")
    return run.replace("/tmp/", f"{tmp_path}/"), fake


def test_version_build_arg_rewrites_the_pin(tmp_path: Path) -> None:
    # run the Dockerfile's own shell step on a copy of requirements.txt
    step, fake = _pip_step(tmp_path)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    original = (REPO / "task_image" / "requirements.txt").read_text()
    for version, expect in (("3.0.1", "3.0.1"), ("", None)):
        (tmp_path / "requirements.txt").write_text(original)
        proc = subprocess.run(["sh", "-c", step], env={**env, "ISAACLAB_VERSION": version},
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        rewritten = (tmp_path / "requirements.txt").read_text()
        if expect is None:
            assert rewritten == original
        else:
            pin_lines = [line for line in rewritten.splitlines() if line.startswith("isaaclab")]
            assert pin_lines and all(line.endswith(f"=={expect}") for line in pin_lines), pin_lines
            # extras and every other line are untouched
            assert [line.split("==")[0] for line in rewritten.splitlines()] == [
                line.split("==")[0] for line in original.splitlines()]
    # a version that can't be applied fails the build instead of silently keeping the old pin
    (tmp_path / "requirements.txt").write_text("jsonschema>=4.20\n")
    proc = subprocess.run(["sh", "-c", step], env={**env, "ISAACLAB_VERSION": "3.0.1"})
    assert proc.returncode != 0


def test_the_lock_constrains_the_locked_version_only(tmp_path: Path) -> None:
    step, fake = _pip_step(tmp_path)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}
    default = re.search(r"^ARG ISAACLAB_VERSION=(\S+)", DOCKERFILES[0].read_text(), re.M).group(1)
    calls = {}
    for version in (default, "", "3.0.1"):
        shutil.copy(REPO / "task_image" / "requirements.txt", tmp_path / "requirements.txt")
        (tmp_path / "pip.log").write_text("")
        proc = subprocess.run(["sh", "-c", step], env={**env, "ISAACLAB_VERSION": version}, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
        calls[version] = (tmp_path / "pip.log").read_text().split(), proc.stdout
    lock = ["-c", f"{tmp_path}/requirements.lock"]
    assert calls[default][0] == ["install", "-r", f"{tmp_path}/requirements.txt", *lock]
    assert calls[""][0] == calls[default][0]
    # another Isaac Lab has other dependencies: resolved without the lock, and the build log says so
    assert calls["3.0.1"][0] == ["install", "-r", f"{tmp_path}/requirements.txt"]
    assert f"not the locked {default}" in calls["3.0.1"][1]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_runtime_user_can_write_home_caches_and_scratch(dockerfile: Path) -> None:
    insts = _instructions(dockerfile)
    last_from = max(i for i, (inst, _) in enumerate(insts) if inst == "FROM")
    final = insts[last_from:]
    uid = [args for inst, args in final if inst == "USER"][-1].split(":")[0]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(args for inst, args in final if inst == "ENV")))
    home = env["HOME"]
    runs = " ".join(args for inst, args in final if inst == "RUN")
    # the user exists with that uid and a home, and the home (caches included) is handed to it
    assert re.search(rf"useradd --uid {uid} .*--create-home", runs)
    assert re.search(rf"chown -R {uid}:{uid} [^&]*{re.escape(home)}(\s|$)", runs), runs
    # Warp's kernel cache, pip's, torch's, matplotlib's: all under the home the user owns
    for var in ("XDG_CACHE_HOME", "WARP_CACHE_PATH"):
        assert env[var].startswith(home + "/"), (var, env[var])
    assert env["WARP_CACHE_PATH"] in runs  # created at build time, owned by the user
    # the job's scratch (tempfile.mkdtemp: each job's workdir and, on 3.x, its own venv) is the sticky /tmp
    assert env["TMPDIR"] == "/tmp"
    assert [args for inst, args in final if inst == "WORKDIR"][-1] == home


def test_the_image_venv_stays_root_owned_and_jobs_can_make_their_own() -> None:
    insts = _instructions(DOCKERFILES[0])
    last_from = max(i for i, (inst, _) in enumerate(insts) if inst == "FROM")
    final = insts[last_from:]
    runs = " ".join(args for inst, args in final if inst == "RUN")
    assert "/opt/venv" not in runs  # no chown: a job installs into its own venv, layered over /opt/venv
    assert "python3.12-venv" in runs  # what `python -m venv` needs at run time


@pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (.venvs/isaaclab)")
def test_entrypoint_takes_both_command_forms(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # the image's `python` is its venv's (a wrapper: a bare symlink would lose the venv)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{ISAACLAB_PYTHON}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=120)

    short = run("--help")  # the image's CMD
    assert short.returncode == 0 and "run" in short.stdout and "list-tasks" in short.stdout
    explicit = run("python", "-m", "isaaclab_runner", "--help")  # the Batch backend's command override
    assert explicit.returncode == 0 and explicit.stdout == short.stdout
    bad = run("run", "--spec", str(tmp_path / "missing.json"), "--workdir", str(tmp_path / "w"))
    assert bad.returncode == 2, bad.stdout + bad.stderr  # the runner's "bad input" exit code reaches Batch
    other = run("echo", "debug shell")
    assert other.stdout.strip() == "debug shell"


def test_base_image_brings_no_cuda_libraries_torch_loads_its_own() -> None:
    text = (REPO / "task_image" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=ubuntu:24\.04$", text, re.M)
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"] and "nvidia/cuda" not in text
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics" in text  # the toolkit still mounts the driver
    if not ISAACLAB_PYTHON.exists():
        pytest.skip("the Isaac Lab venv is missing: run `make install`")
    # what the image's /opt/venv holds (the same lock): torch's CUDA libraries resolve inside the venv, none from
    # the system, so nothing a CUDA base image adds is loaded
    torch_lib = next((ISAACLAB_PYTHON.parent.parent / "lib").glob("python3.*/site-packages/torch/lib"))
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    out = subprocess.run(["ldd", str(torch_lib / "libtorch_cuda.so")], capture_output=True, text=True, env=env,
                         check=True).stdout
    cuda = [line.split() for line in out.splitlines() if re.match(r"\s*lib(cu|nccl|nvJitLink|nvshmem)", line)]
    assert len(cuda) >= 8, out  # cudart, cublas, cudnn, cufft, curand, cusparse, nccl, nvJitLink...
    site = str(torch_lib.parent.parent)
    outside = [c for c in cuda if len(c) < 3 or not os.path.realpath(c[2]).startswith(os.path.realpath(site))]
    assert outside == [], outside
    assert "not found" not in out
