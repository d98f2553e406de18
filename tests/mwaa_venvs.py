"""Venvs built as MWAA's Airflow 3.x images build theirs, for tests/mwaa; started in the background as soon as
the session has collected a tests/mwaa test (tests/conftest.py), so their ~2 min of pip each overlaps the other
tests instead of adding to them.

Per version (``tests/fixtures/mwaa/<version>/``, copied from aws/amazon-mwaa-docker-images; SOURCE.md there):
a fresh venv gets what the image's bootstrap installs under the image's ``airflow_constraints.txt``, then the
bundle's ``requirements.txt`` as MWAA's ``safe-pip-install`` runs it (``-c mwaa_essential_constraints.txt``), its
``--constraint`` URL replaced by the image's copy of that same file (GitHub's raw URLs can't be reached here).
Cached under ``.local/mwaa-venv/<version>-<key>``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pipeline_env import mwaa_bundle_builder

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "mwaa"
VENV_ROOT = REPO / ".local" / "mwaa-venv"
PIP = ["-m", "pip", "install", "-q", "--disable-pip-version-check"]

_prebuilds: dict[str, Future] = {}
_prebuild_lock = threading.Lock()


def image_packages(version: str) -> list[str]:
    """What the image's 02-airflow bootstrap installs, less the packages that only MWAA's own processes use
    (psycopg2, pycurl: C builds; the fab and postgres providers; boto3-stubs)."""
    return [f"apache-airflow[celery,statsd]=={version}", "apache-airflow-providers-amazon[aiobotocore]",
            "apache-airflow-providers-standard", "celery[sqs]"]


def _nice() -> None:
    os.nice(10)  # in the background the foreground tests keep the CPU


def _pip(python: Path, args: list[str], what: str, timeout: int) -> None:
    proc = subprocess.run([str(python), *PIP, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_nice)
    assert proc.returncode == 0, f"{what}:\n{proc.stderr[-3000:]}"


def mwaa_venv(version: str, bundle_requirements: str) -> Path:
    """Return the python of a venv built as MWAA's ``version`` image and its requirements install build it
    (built once per key; a build of the same version in another thread or process is waited for)."""
    fixtures = FIXTURES / version
    key = hashlib.sha256(json.dumps({
        "bundle": bundle_requirements, "image": image_packages(version),
        "constraints": hashlib.sha256((fixtures / "airflow_constraints.txt").read_bytes()).hexdigest(),
        "py": sys.version_info[:2]}, sort_keys=True).encode()).hexdigest()[:12]
    venv = VENV_ROOT / f"{version}-{key}"
    python = venv / "bin" / "python"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with open(VENV_ROOT / f".lock-{version}", "w") as lock:  # one builder per version (threads, processes)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        _pip(python, ["-c", str(fixtures / "airflow_constraints.txt"),
                      "-c", str(fixtures / "mwaa_essential_constraints.txt"), *image_packages(version)],
             f"the {version} image's packages", 1200)
        reqs = venv / "requirements.txt"
        reqs.write_text(re.sub(r'^--constraint "[^"]+"', f'--constraint "{fixtures / "airflow_constraints.txt"}"',
                               bundle_requirements, count=1))
        _pip(python, ["-c", str(fixtures / "mwaa_essential_constraints.txt"), "-r", str(reqs)],
             f"the bundle's requirements under {version}'s constraints", 900)
        (venv / ".complete").write_text(key)
    return python


def bundle_requirements(version: str) -> str:
    """The ``requirements.txt`` that ``make mwaa-bundle AIRFLOW_VERSION=<version>`` writes."""
    with tempfile.TemporaryDirectory(prefix="mwaa-bundle-") as tmp:
        return (mwaa_bundle_builder().build(Path(tmp) / "mwaa", version) / "requirements.txt").read_text()


def start_prebuild(versions: list[str]) -> None:
    """Build the venvs of ``versions`` in background threads (at most once per session)."""
    with _prebuild_lock:
        todo = [v for v in versions if v not in _prebuilds]
        if not todo:
            return
        pool = ThreadPoolExecutor(max_workers=len(todo), thread_name_prefix="mwaa-venv")
        for version in todo:
            _prebuilds[version] = pool.submit(lambda v: mwaa_venv(v, bundle_requirements(v)), version)
        pool.shutdown(wait=False)


def venv_for(version: str, requirements: str) -> Path:
    """The venv for ``version``: a background build's if one is under way (its error, if any, raised here)."""
    future = _prebuilds.get(version)
    if future is not None:
        future.result()
    return mwaa_venv(version, requirements)
