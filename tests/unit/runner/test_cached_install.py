"""The cached editable install on a host whose Python already holds the env package, and the cached task list.

A job's venv is layered over the image's Python (``packages.JobEnvironment``). When that Python already had the
package (a benchmark host that installed it for bare ``isaaclab train``), pip took the cached editable wheel for
"already installed" and installed nothing: the job failed with "pip installed nothing from the env package".
Here the "image" is a real venv over the Isaac Lab venv holding the package, and two real jobs install the same
archive with one cache location.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packages_env import RECORDING_INSTALL, run_script, tiny_env_package
from pipeline_env import ISAACLAB_PYTHON

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

TWO_JOBS = RECORDING_INSTALL + r'''
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


def test_the_cached_editable_build_installs_when_the_image_already_holds_the_package(tmp_path: Path) -> None:
    project, archive = tiny_env_package(tmp_path)
    image_python = run_script(ISAACLAB_PYTHON, IMAGE, tmp_path / "image", project)
    out = json.loads(run_script(image_python, TWO_JOBS, archive, tmp_path))
    assert "error" not in out["job1"] and "error" not in out["job2"], out  # was: "pip installed nothing ..."
    assert any(" --editable " in c for c in out["job1"]["pip"])  # job 1 builds (and caches) the editable wheel
    assert out["job2"]["pip"] == [], out  # job 2 unpacks the cached build: no pip, no build
    for job in ("job1", "job2"):  # each job's own venv holds the package, editable from its own folder
        assert out[job]["editable"] and out[job]["finder_names_project"], out
        assert out[job]["project"] == str(tmp_path / job / "env_package" / "tiny_env")
        assert "tiny_env-0.3.0.dist-info" in out[job]["dists"] and out[job]["modules"] == ["tiny_env"]
    assert out["job2"]["seconds"] < 1.0, out  # pip alone takes seconds to start


def test_a_later_job_with_the_package_checks_its_task_against_the_cached_list(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The pre-flight import of every task module (5-10 s) runs once per package and image; a later job with the
    same archive (a retry, another host: the cache location is shared) resolves its task from the kept list."""
    from isaaclab_runner import packages
    from isaaclab_runner.caches import WheelCache
    from isaaclab_runner.jobspec import JobSpec
    from isaaclab_runner.runner import JobRunner

    imports: list[str] = []

    def tasks_by_source(python=None):  # what the fresh interpreter would report: the image's and the package's
        imports.append(str(python))
        return {"isaaclab_tasks": ["Isaac-Cartpole-Direct"], "tiny-env": ["Tiny-Env-Direct"]}

    monkeypatch.setattr(packages, "tasks_by_source", tasks_by_source)
    _, archive = tiny_env_package(tmp_path)
    found = []
    for job, task in (("job1", "Tiny-Env-Direct"), ("job2", "Tiny-Env-Direct"), ("job3", "Isaac-Cartpole-Direct")):
        spec = JobSpec.from_dict({"jobId": "00000000-0000-0000-0000-000000000004", "mode": "train", "task": task,
                                  "rlLibrary": "rsl_rl", "seed": 1, "numEnvs": 16, "maxIterations": 3,
                                  "stagingUri": str(tmp_path / job / "staging"), "cacheUri": str(tmp_path / "cache")})
        runner = JobRunner(spec, tmp_path / job / "work")
        found.append(runner._verify_task(WheelCache(str(tmp_path / "cache"), tmp_path / job / "cache"), archive))
    assert found == ["Tiny-Env-Direct", "Tiny-Env-Direct", "Isaac-Cartpole-Direct"]
    assert len(imports) == 1  # the first job only
    assert capsys.readouterr().out.count("Task list of tiny_env.tar.gz from the cache") == 2
    with pytest.raises(packages.PackageError, match="'Tiny-Env-Typo' is not registered.*Tiny-Env-Direct"):
        packages.verify_task("Tiny-Env-Typo", tasks=WheelCache(str(tmp_path / "cache"), tmp_path / "c4")
                             .get_tasks(archive)["tiny-env"])
