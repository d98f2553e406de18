"""Shared by the runner's package tests: a tiny env package archive and the start of a script that installs it in
the Isaac Lab venv while recording every command the runner starts."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from pipeline_env import REPO

# the start of a script run in the Isaac Lab venv: ``archive, tmp`` from argv, every Popen's command in ``commands``
RECORDING_INSTALL = r'''
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
'''


def guide_setup_py(name: str, requires: str = '"numpy>=1.20.0",') -> str:
    """The user guide's setup.py (find_packages(), a dependency, no package_data) for the package ``name``."""
    return f'''from setuptools import setup, find_packages

setup(
    name="{name}",
    version="0.1.0",
    packages=find_packages(),
    install_requires=[
        {requires}
    ],
)
'''


def tiny_env_package(tmp: Path) -> tuple[Path, Path]:
    """A project ``tiny-env`` 0.3.0 (module ``tiny_env``, a setup.py) under ``tmp/src`` and its ``tar.gz`` archive."""
    project = tmp / "src" / "tiny_env"
    (project / "tiny_env").mkdir(parents=True)
    (project / "tiny_env" / "__init__.py").write_text("VALUE = 1\n")
    (project / "setup.py").write_text("from setuptools import setup\nsetup(name='tiny-env', version='0.3.0', "
                                      "packages=['tiny_env'])\n")
    archive = tmp / "tiny_env.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(project, arcname="tiny_env")
    return project, archive


def run_script(python: Path | str, code: str, *args: object) -> str:
    """Run ``code`` with ``python`` in task_image/ (it must succeed); its last line of output."""
    proc = subprocess.run([str(python), "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600,
                          cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout.strip().splitlines()[-1]
