"""The task image runs as uid 10001 over a root-built /opt/venv: the env package must install all the same.

Laid out as the image lays it out: the Isaac Lab environment (here .venvs/isaaclab, built by root) is read-only to
the job's user, and the job's scratch folder is its own. The runner installs into the job's own venv
(``packages.JobEnvironment``); the control shows a plain ``pip install`` into the base environment is refused,
which is what every job with an env package met before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
GUIDE_ENV = REPO / "examples" / "envs" / "my_custom_env"
UID = 10001  # the image's USER

pytestmark = [
    pytest.mark.isaaclab,
    pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)"),
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                       reason="needs root and setpriv to run a step as the image's non-root user"),
]

INSTALL = """
import sys
from pathlib import Path
from isaaclab_runner.packages import JobEnvironment, fetch_and_install
work = Path(sys.argv[1])
env = JobEnvironment.create(work / "venv")
installed = fetch_and_install((work / "my_custom_env.tar.gz").as_uri(), work, env)
import subprocess
where = subprocess.run([str(env.python), "-c", "import my_custom_env; print(my_custom_env.__file__)"],
                       capture_output=True, text=True, check=True).stdout.strip()
print("INSTALLED", installed.dist_name, installed.version, ",".join(installed.modules), env.site_packages, where)
"""


@pytest.fixture
def interpreter_reachable() -> Iterator[None]:
    """Let the job user reach the venv's base interpreter (pyenv keeps it under /root, which is 0700 here; the image
    has it in /usr) and the checkout: add o+x to the folders above them that lack it, for the test only."""
    home = Path(subprocess.run([str(ISAACLAB_PYTHON), "-c", "import sys; print(sys.base_prefix)"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # and the checkout itself (the runner is installed from task_image/, the venv lives in .venvs/): a clone in a
    # mktemp -d folder is 0700 too
    folders = dict.fromkeys([home, *home.parents, REPO, *REPO.parents])
    changed = [(d, d.stat().st_mode) for d in folders if not d.stat().st_mode & 0o001]
    for folder, mode in changed:
        folder.chmod(mode | 0o001)
    try:
        yield
    finally:
        for folder, mode in changed:
            folder.chmod(mode)


def _as_job_user(args: list[str], work: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PIP_NO_CACHE_DIR": "1", "TMPDIR": str(work)}
    return subprocess.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_job_user_installs_the_env_package_over_a_root_built_venv(tmp_path: Path, interpreter_reachable: None,
                                                                     request: pytest.FixtureRequest) -> None:
    work = Path(tempfile.mkdtemp(prefix="isaaclab-job-"))  # pytest's tmp_path sits under a 0700 folder of root's
    request.addfinalizer(lambda: shutil.rmtree(work, ignore_errors=True))
    src = tmp_path / "src"
    shutil.copytree(GUIDE_ENV, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    subprocess.run(["tar", "-czf", str(work / "my_custom_env.tar.gz"), "."], cwd=src, check=True)
    os.chown(work, UID, UID)
    os.chown(work / "my_custom_env.tar.gz", UID, UID)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    base = Path(subprocess.run([str(ISAACLAB_PYTHON), "-c", purelib], capture_output=True, text=True,
                               check=True).stdout.strip())
    assert base.stat().st_uid == 0 and not base.stat().st_mode & 0o002  # root-built, not writable by others

    # control: pip into the image's environment, as the runner did before each job had its own venv
    control = _as_job_user([str(ISAACLAB_PYTHON), "-m", "pip", "install", "--no-input", "--no-build-isolation",
                            str(work / "my_custom_env.tar.gz")], work)
    assert control.returncode != 0 and "Permission denied" in control.stdout + control.stderr, control.stderr[-2000:]

    done = _as_job_user([str(ISAACLAB_PYTHON), "-c", INSTALL, str(work)], work)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("INSTALLED "))
    _, name, version, modules, site, where = line.split(" ", 5)
    assert (name, version, modules) == ("my_custom_env", "0.1.0", "my_custom_env,agents")
    # installed editable, as the guide says: the job's own venv points at the package extracted in the job folder
    assert Path(site).is_relative_to(work) and Path(where).is_relative_to(work), (site, where)
    assert not Path(where).is_relative_to(site) and Path(where).name == "__init__.py"
    assert not (base / "my_custom_env").exists()
