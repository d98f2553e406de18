"""Env packages the user guide's way: which modules a distribution provides, the entry points the runner writes,
the template generator's layout, and the 2.x import hook. (The real install and training: tests/journeys.)"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from isaaclab_runner import import_tasks, packages
from isaaclab_runner.packages import JobEnvironment, find_project_root, provided_modules, register_modules


def _dist(tmp_path: Path, name: str, files: dict[str, str]) -> importlib.metadata.Distribution:
    info = tmp_path / f"{name}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    for rel, text in files.items():
        (info / rel).write_text(text)
    return importlib.metadata.PathDistribution(info)


def test_modules_from_top_level_txt_guide_layout_first(tmp_path: Path) -> None:
    dist = _dist(tmp_path, "my_custom_env", {"top_level.txt": "agents\nmy_custom_env\ntests\n"})
    assert provided_modules(dist) == ["my_custom_env", "agents"]  # tests left out; agents after the package


def test_modules_from_record_when_there_is_no_top_level_txt(tmp_path: Path) -> None:
    names = ["my_env/__init__.py", "my_env/cfg.py", "single.py", "my_env-0.1.0.dist-info/METADATA",
             "__editable__.my_env.pth"]
    dist = _dist(tmp_path / "site", "my_env", {"RECORD": "".join(f"{n},,\n" for n in names)})
    for name in names:  # importlib.metadata lists only the RECORD entries that exist
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).touch()
    assert provided_modules(dist) == ["my_env", "single"]


def test_modules_from_the_source_tree_as_last_resort(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg" / "__init__.py").write_text("")
    assert provided_modules(_dist(tmp_path / "d", "pkg", {}), project) == ["pkg"]


def test_registered_modules_are_isaaclab_tasks_entry_points(tmp_path: Path) -> None:
    env = JobEnvironment(tmp_path / "bin" / "python", tmp_path / "site")
    register_modules(env, "my_custom_env", ["my_custom_env", "agents"])
    eps = importlib.metadata.entry_points(group="isaaclab.tasks")
    found = [ep for ep in importlib.metadata.distributions(path=[str(env.site_packages)])]
    (dist,) = found
    assert dist.metadata["Name"] == packages.SHIM_DIST and dist.metadata["Summary"] == "my_custom_env"
    assert {(ep.name, ep.value) for ep in dist.entry_points.select(group="isaaclab.tasks")} == {
        ("my_custom_env", "my_custom_env"), ("agents", "agents")}
    assert eps is not None


def test_template_generator_external_project_installs_from_source(tmp_path: Path) -> None:
    """`./isaaclab.sh --new` (External): a tooling-only pyproject.toml at the root, the package in source/<name>."""
    root = tmp_path / "my_project"
    (root / "source" / "my_project" / "my_project").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[tool.isort]\nprofile = 'black'\n[tool.pyright]\n")
    (root / "source" / "my_project" / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (root / "source" / "my_project" / "pyproject.toml").write_text("[build-system]\nrequires = ['setuptools']\n")
    assert find_project_root(tmp_path) == root / "source" / "my_project"


def test_job_environment_layers_over_the_runner_and_isolates_installs(tmp_path: Path) -> None:
    """A job venv sees the runner's packages, but what one job installs is invisible to another."""
    a = JobEnvironment.create(tmp_path / "a")
    b = JobEnvironment.create(tmp_path / "b")
    (a.site_packages / "only_in_a.py").write_text("VALUE = 1\n")
    code = "import pytest, importlib.util; print(importlib.util.find_spec('only_in_a') is not None)"
    out = [subprocess.run([str(env.python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()
           for env in (a, b)]
    assert out == ["True", "False"]
    assert a.isaaclab.read_text().startswith(f"#!{a.python}")


def test_import_hook_imports_the_package_right_after_the_trigger(tmp_path: Path) -> None:
    (tmp_path / "fake_tasks.py").write_text("import builtins\nbuiltins.ORDER = ['tasks']\n")
    (tmp_path / "my_env.py").write_text("import builtins\nbuiltins.ORDER.append('my_env')\n")
    script = tmp_path / "train.py"
    script.write_text("import fake_tasks, builtins\nprint(builtins.ORDER)\n")
    code = (f"import sys; sys.path.insert(0, {str(tmp_path)!r}); from isaaclab_runner import import_tasks; "
            f"import_tasks.install(['my_env'], trigger='fake_tasks'); import fake_tasks, builtins; "
            "print(builtins.ORDER)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(import_tasks.__file__).parents[1])}).stdout
    assert out.strip() == "['tasks', 'my_env']"


def test_import_hook_main_runs_the_script_with_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "helper_mod.py").write_text("X = 3\n")  # beside the script, as 2.x's cli_args is
    script = tmp_path / "train.py"
    script.write_text("import sys, helper_mod\nprint(sys.argv[1:], helper_mod.X, __name__)\n")
    out = subprocess.run([sys.executable, "-m", "isaaclab_runner.import_tasks", str(script), "--task", "T"],
                         capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(Path(import_tasks.__file__).parents[1])}).stdout
    assert out.strip() == "['--task', 'T'] 3 __main__"


@pytest.mark.parametrize("bad", ["", "x = (\n"])
def test_no_project_is_refused_with_how_to_package(tmp_path: Path, bad: str) -> None:
    (tmp_path / "pyproject.toml").write_text(bad)
    with pytest.raises(packages.PackageError, match="python -m build --sdist"):
        find_project_root(tmp_path)
