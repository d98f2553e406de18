"""Installing an env package as the user guide says: editable in place, requirements against the image, bounded.

Each test installs a real package (a real tar.gz, real pip) into a fresh job environment with the Isaac Lab
venv's Python, as a job does.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from packages_env import guide_setup_py
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")

INSTALL = r'''
import json, subprocess, sys
from pathlib import Path
from isaaclab_runner import packages

archive, work, timeout = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
env = packages.JobEnvironment.create(work / "venv")
try:
    installed = packages.fetch_and_install(str(archive), work, env, timeout_s=timeout)
except packages.PackageError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
probe = "import guide_env.cfg as c; print(c.ASSET.read_text().strip(), c.__file__)"
seen = subprocess.run([str(env.python), "-c", probe], capture_output=True, text=True)
print(json.dumps({"editable": installed.editable, "project": str(installed.project), "probe": seen.stdout.strip(),
                  "probe_error": seen.stderr[-2000:]}))
'''


def _guide_package(tmp: Path, requires: str = '"numpy>=1.20.0",', setup_head: str = "") -> Path:
    """The guide's layout: setup.py with find_packages() and a dependency, no package_data, an asset under the
    package; packed with the guide's ``tar -czf ... .`` inside the project folder."""
    project = tmp / "guide_env"
    (project / "guide_env" / "assets").mkdir(parents=True)
    (project / "setup.py").write_text(setup_head + guide_setup_py("guide_env", requires))
    (project / "guide_env" / "__init__.py").write_text("")
    (project / "guide_env" / "cfg.py").write_text(
        "from pathlib import Path\nASSET = Path(__file__).resolve().parent / 'assets' / 'robot.usda'\n")
    (project / "guide_env" / "assets" / "robot.usda").write_text("#usda 1.0\n")
    archive = tmp / "guide_env.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "--exclude=*.pyc", "--exclude=__pycache__", "--exclude=.git", "."],
                   cwd=project, check=True)
    return archive


def _install(archive: Path, work: Path, timeout_s: float = 300) -> tuple[dict, float]:
    start = time.monotonic()
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", INSTALL, str(archive), str(work), str(timeout_s)],
                          capture_output=True, text=True, timeout=600, cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.monotonic() - start


def test_the_guide_layout_without_package_data_finds_its_asset_next_to_the_module(tmp_path: Path) -> None:
    """A plain ``pip install`` would copy only the .py files; installed editable, the asset is where the module is."""
    out, _ = _install(_guide_package(tmp_path), tmp_path / "job")
    assert out.get("editable") is True, out
    project = out["project"]
    assert out["probe"] == f"#usda 1.0 {project}/guide_env/cfg.py", out  # imported in place, asset read


def test_a_requirement_on_another_torch_is_refused_naming_package_and_version(tmp_path: Path) -> None:
    out, _ = _install(_guide_package(tmp_path, requires='"torch==2.0.0",'), tmp_path / "job")
    error = out.get("error", "")
    torch = subprocess.run([str(ISAACLAB_PYTHON), "-c", "import importlib.metadata as m; print(m.version('torch'))"],
                           capture_output=True, text=True).stdout.strip()
    assert error.startswith(f"guide_env 0.1.0 requires torch==2.0.0, but the image has torch {torch}"), error
    assert "relax the requirement" in error


def test_an_install_that_hangs_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    """A setup.py that sleeps (waiting on a network, say) is killed with its pip after the bounded time."""
    pid_file = tmp_path / "setup.pid"
    head = f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n"
    out, took = _install(_guide_package(tmp_path, setup_head=head), tmp_path / "job", timeout_s=8)
    error = out.get("error", "")
    assert error.startswith("installing the env package took longer than 8s and was stopped"), error
    assert "the Variable isaaclab_install_timeout_s" in error
    assert took < 60, took  # the venv, then at most the timeout: not the setup.py's 600 s
    pid = int(pid_file.read_text())
    assert not _running(pid)  # the sleeping setup.py is gone, not left behind


def _running(pid: int, wait_s: float = 5.0) -> bool:
    """True if ``pid`` still runs after ``wait_s`` (a killed child may stay a zombie until it is reaped)."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            return False
        if state in "ZX":
            return False
        time.sleep(0.2)
    return True
