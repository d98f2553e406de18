"""The cached editable install on a host whose Python already holds the env package, and the cached task list.

A job's venv is layered over the image's Python (``packages.JobEnvironment``). When that Python already had the
package (a benchmark host that installed it for bare ``isaaclab train``), pip took the cached editable wheel for
"already installed" and installed nothing: the job failed with "pip installed nothing from the env package".
Here the "image" is a real venv over the Isaac Lab venv holding the package, and two real jobs install the same
archive with one cache location.
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
ISAACLAB_PYTHON = REPO / ".venvs" / "isaaclab" / "bin" / "python"
pytestmark = pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")

IMAGE = r'''
import subprocess, sys
from pathlib import Path
from isaaclab_runner import packages

image, project = Path(sys.argv[1]), sys.argv[2]
env = packages.JobEnvironment.create(image)  # a Python over the Isaac Lab venv, as the image's /opt/venv
subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", project],
               check=True)
print(env.python)
'''

TWO_JOBS = r'''
import json, subprocess, sys, time
from pathlib import Path
from isaaclab_runner import packages
from isaaclab_runner.caches import WheelCache

archive, tmp = Path(sys.argv[1]), Path(sys.argv[2])
commands = []
popen = subprocess.Popen
def recording(cmd, *args, **kwargs):
    commands.append(" ".join(map(str, cmd)))
    return popen(cmd, *args, **kwargs)
subprocess.Popen = recording
out = {}
for job in ("job1", "job2"):
    commands.clear()
    env = packages.JobEnvironment.create(tmp / job / "venv")
    started = time.monotonic()
    try:
        installed = packages.fetch_and_install(str(archive), tmp / job, env, WheelCache(str(tmp / "cache"), tmp / job))
    except packages.PackageError as exc:
        out[job] = {"error": str(exc)}
        continue
    seconds = time.monotonic() - started
    finder = "".join(p.read_text() for p in env.site_packages.glob("__editable__*finder.py"))
    out[job] = {"pip": [c for c in commands if " pip " in c], "seconds": seconds, "modules": installed.modules,
                "editable": installed.editable, "project": str(installed.project),
                "finder_names_project": str(installed.project) in finder,
                "dists": sorted(p.name for p in env.site_packages.glob("*.dist-info"))}
print(json.dumps(out))
'''


def _package(tmp: Path) -> tuple[Path, Path]:
    project = tmp / "src" / "tiny_env"
    (project / "tiny_env").mkdir(parents=True)
    (project / "tiny_env" / "__init__.py").write_text("VALUE = 1\n")
    (project / "setup.py").write_text("from setuptools import setup\nsetup(name='tiny-env', version='0.3.0', "
                                      "packages=['tiny_env'])\n")
    archive = tmp / "tiny_env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(project, arcname="tiny_env")
    return project, archive


def _run(python: Path | str, code: str, *args: object) -> str:
    proc = subprocess.run([str(python), "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600,
                          cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]


def test_the_cached_editable_build_installs_when_the_image_already_holds_the_package(tmp_path: Path) -> None:
    project, archive = _package(tmp_path)
    image_python = _run(ISAACLAB_PYTHON, IMAGE, tmp_path / "image", project)
    out = json.loads(_run(image_python, TWO_JOBS, archive, tmp_path))
    assert "error" not in out["job1"] and "error" not in out["job2"], out  # was: "pip installed nothing ..."
    assert any(" --editable " in c for c in out["job1"]["pip"])  # job 1 builds (and caches) the editable wheel
    assert out["job2"]["pip"] == [], out  # job 2 unpacks the cached build: no pip, no build
    for job in ("job1", "job2"):  # each job's own venv holds the package, editable from its own folder
        assert out[job]["editable"] and out[job]["finder_names_project"], out
        assert out[job]["project"] == str(tmp_path / job / "env_package" / "tiny_env")
        assert "tiny_env-0.3.0.dist-info" in out[job]["dists"] and out[job]["modules"] == ["tiny_env"]
    assert out["job2"]["seconds"] < 1.0, out  # pip alone takes seconds to start
