"""Isaac Lab 2.x names in an env package stop the job before anything trains, with the 3.x name first.

Each case is a real job (``JobRunner.run`` in the Isaac Lab venv) on a real tar.gz of a guide-shaped package whose
code uses one 2.x name of the table (``legacy_names``).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")

JOB = r'''
import json, sys
from pathlib import Path
from isaaclab_runner.jobspec import JobSpec
from isaaclab_runner.runner import JobRunner

archive, tmp = sys.argv[1], Path(sys.argv[2])
spec = JobSpec.from_dict({"jobId": "00000000-0000-0000-0000-000000000030", "mode": "train", "task": "MyCartpole-v0",
                          "rlLibrary": "rsl_rl", "seed": 1, "numEnvs": 4, "maxIterations": 1,
                          "stagingUri": str(tmp / "staging"), "envPackageUri": archive, "device": "cpu"})
code = JobRunner(spec, tmp / "work").run()
print(json.dumps({"code": code}))
'''

SETUP = ('from setuptools import setup, find_packages\n'
         'setup(name="my_cartpole", version="0.1.0", packages=find_packages())\n')
ATTR_ENV = '''class MyCartpoleEnv:
    def _get_rewards(self):
        pole_angle = self.joint_pos[:, self.{attr}]
        return pole_angle
'''
CASES = {  # the 2.x code -> the 3.x name the error's first line must give
    "from isaaclab_tasks.direct.cartpole import CartpoleEnv, CartpoleEnvCfg\n":
        ("isaaclab_tasks.direct.cartpole", "isaaclab_tasks.core.cartpole.cartpole_direct_env (CartpoleEnv)"),
    "import isaaclab_tasks.direct.ant\n": ("isaaclab_tasks.direct.ant", "isaaclab_tasks.core.<task>"),
    "from isaaclab_tasks.manager_based.classic.cartpole import mdp\n":
        ("isaaclab_tasks.manager_based.classic.cartpole", "isaaclab_tasks.core.<task>"),
    "from omni.isaac.lab.envs import DirectRLEnv\n": ("omni.isaac.lab.envs", "use isaaclab (for omni.isaac.lab.envs)"),
    "import omni.isaac.lab_tasks\n": ("omni.isaac.lab_tasks", "use isaaclab_tasks instead"),
    "from omni.isaac.lab_assets import CARTPOLE_CFG\n": ("omni.isaac.lab_assets", "use isaaclab_assets instead"),
    ATTR_ENV.format(attr="pole_dof_idx"): ("self.pole_dof_idx", "use self._pole_dof_idx instead"),
    ATTR_ENV.format(attr="cart_dof_idx"): ("self.cart_dof_idx", "use self._cart_dof_idx instead"),
}


def _job(tmp: Path, env_code: str) -> tuple[int, dict, str]:
    project = tmp / "my_cartpole"
    (project / "my_cartpole").mkdir(parents=True)
    (project / "setup.py").write_text(SETUP)
    (project / "my_cartpole" / "__init__.py").write_text("")
    (project / "my_cartpole" / "my_env.py").write_text(env_code)
    archive = tmp / "my_cartpole.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "--exclude=*.pyc", "--exclude=__pycache__", "."], cwd=project,
                   check=True)
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", JOB, str(archive), str(tmp)], capture_output=True, text=True,
                          timeout=600, cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp / "staging" / "result.json").read_text())
    log = (tmp / "staging" / "runner.log").read_text()
    return json.loads(proc.stdout.strip().splitlines()[-1])["code"], result, log


@pytest.mark.parametrize("code", list(CASES), ids=[old for old, _ in CASES.values()])
def test_a_2x_name_stops_the_job_before_training_with_the_3x_name_first(code: str, tmp_path: Path) -> None:
    old, new = CASES[code]
    exit_code, result, log = _job(tmp_path, code)
    first = result["error"].splitlines()[0]
    assert exit_code == 2, result
    assert first.startswith("Isaac Lab 3 name needed: ") and new in first and old in first, first
    assert "my_cartpole/my_env.py:" in first
    assert f"[runner] ERROR: {first}" in log  # the task log carries it too
    assert "Running: " not in log  # nothing was installed into Isaac Lab's run, nothing trained


def test_the_package_s_own_attribute_of_that_name_is_not_flagged(tmp_path: Path) -> None:
    from isaaclab_runner.legacy_names import scan

    (tmp_path / "env.py").write_text("class E:\n    def __init__(self):\n        self.pole_dof_idx = 0\n"
                                     "    def r(self):\n        return self.pole_dof_idx\n")
    assert scan(tmp_path) == []
