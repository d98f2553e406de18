"""Checks of the example custom environment package (``examples/envs/custom_cartpole``) that need no Isaac Lab.

They run in the Airflow-side environment, so they read the package's files (TOML, YAML, USD text, Python source
through ``ast``) instead of importing it: importing would pull in Isaac Lab. Training itself is covered by the
``isaaclab``-marked and end-to-end tests.
"""

from __future__ import annotations

import ast
import io
import re
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2] / "examples" / "envs" / "custom_cartpole"
PACKAGE_DIR = PROJECT_DIR / "custom_cartpole"
USD_FILE = PACKAGE_DIR / "assets" / "cartpole.usda"
TASK_ID = "Isaac-Custom-Cartpole-Direct"

# Built-in direct cartpole values the variant must exceed (isaaclab_tasks.core.cartpole.cartpole_direct_env_cfg).
BUILTIN_EPISODE_LENGTH_S = 5.0
BUILTIN_MAX_CART_POS = 3.0


def _pyproject() -> dict:
    """Parse the package's ``pyproject.toml``."""
    return tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())


def _register_kwargs() -> dict[str, object]:
    """Return the keyword arguments of the ``gym.register`` call in ``custom_cartpole/__init__.py``, as literals."""
    tree = ast.parse((PACKAGE_DIR / "__init__.py").read_text())
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register"
    ]
    assert len(calls) == 1, "expected exactly one gym.register(...) call"
    module_constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    kwargs: dict[str, object] = {}
    for keyword in calls[0].keywords:
        if isinstance(keyword.value, ast.Name):  # e.g. id=TASK_ID
            kwargs[keyword.arg] = module_constants[keyword.value.id]
        else:
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
    return kwargs


def _class_attributes(path: Path, class_name: str) -> dict[str, object]:
    """Return the literal class-level assignments of ``class_name`` defined in ``path``."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            attributes: dict[str, object] = {}
            for statement in node.body:
                target = statement.targets[0] if isinstance(statement, ast.Assign) else None
                if isinstance(statement, ast.AnnAssign):
                    target = statement.target
                if isinstance(target, ast.Name) and statement.value is not None:
                    try:
                        attributes[target.id] = ast.literal_eval(statement.value)
                    except ValueError:  # a config object, not a literal
                        attributes[target.id] = statement.value
            return attributes
    raise AssertionError(f"class {class_name} not found in {path}")


def _resolve_entry_point(entry_point: str) -> Path:
    """Map ``pkg.module:Name`` or ``pkg.subpkg:file.yaml`` to the file it names inside the project folder."""
    module, _, attribute = entry_point.partition(":")
    module_path = PROJECT_DIR.joinpath(*module.split("."))
    if attribute.endswith(".yaml"):
        return module_path / attribute
    module_file = module_path.with_suffix(".py")
    defined = {node.name for node in ast.parse(module_file.read_text()).body if isinstance(node, ast.ClassDef)}
    assert attribute in defined, f"{entry_point}: no class {attribute} in {module_file}"
    return module_file


def test_pyproject_declares_isaaclab_tasks_entry_point() -> None:
    """Isaac Lab's CLI finds the task only through the ``isaaclab.tasks`` entry-point group."""
    project = _pyproject()["project"]
    assert project["name"] == "isaaclab-custom-cartpole"
    assert project["version"] == "1.0.0"
    assert project["entry-points"]["isaaclab.tasks"] == {"custom_cartpole": "custom_cartpole"}
    # Isaac Lab is already installed where the package goes; a listed dependency would make pip resolve it again.
    assert project.get("dependencies", []) == []


def test_package_data_ships_asset_and_agent_configs() -> None:
    """The USD file and the YAML agent configs are not Python files, so they must be declared as package data."""
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    assert package_data
    for package, patterns in package_data.items():
        package_dir = PROJECT_DIR.joinpath(*package.split("."))
        assert any(match for pattern in patterns for match in package_dir.glob(pattern)), (package, patterns)
    shipped = {
        path
        for package, patterns in package_data.items()
        for pattern in patterns
        for path in PROJECT_DIR.joinpath(*package.split(".")).glob(pattern)
    }
    assert USD_FILE in shipped
    assert {path.name for path in shipped if path.suffix == ".yaml"} >= {"skrl_ppo_cfg.yaml", "rl_games_ppo_cfg.yaml"}


def test_usd_asset_defines_the_joints_the_cartpole_env_expects() -> None:
    """The built-in cartpole env looks its joints up by name; a renamed joint fails only at simulation start."""
    text = USD_FILE.read_text()
    assert text.startswith("#usda 1.0")
    assert 'defaultPrim = "cartpole"' in text
    assert "PhysicsArticulationRootAPI" in text
    assert re.search(r'def PhysicsPrismaticJoint "slider_to_cart"', text)
    assert re.search(r'def PhysicsRevoluteJoint "cart_to_pole"', text)
    # A remote reference would need the network that training machines lack.
    assert "http://" not in text and "https://" not in text and "omniverse://" not in text


def test_usd_track_is_longer_than_the_termination_limit() -> None:
    """The cart must be able to reach ``max_cart_pos``; otherwise out-of-bounds termination never triggers."""
    text = USD_FILE.read_text()
    upper_limit = float(re.search(r"float physics:upperLimit = ([\d.]+)", text).group(1))
    max_cart_pos = _class_attributes(PACKAGE_DIR / "cartpole_env_cfg.py", "CustomCartpoleEnvCfg")["max_cart_pos"]
    assert upper_limit > max_cart_pos


def test_env_cfg_is_the_longer_wider_variant() -> None:
    """The variant differs from the built-in cartpole by longer episodes and a wider track."""
    attributes = _class_attributes(PACKAGE_DIR / "cartpole_env_cfg.py", "CustomCartpoleEnvCfg")
    assert attributes["episode_length_s"] > BUILTIN_EPISODE_LENGTH_S
    assert attributes["max_cart_pos"] > BUILTIN_MAX_CART_POS


def test_task_registration_points_at_files_in_the_package() -> None:
    """Every ``*_cfg_entry_point`` of the registered task names a file (and class) that exists in the package."""
    kwargs = _register_kwargs()
    assert kwargs["id"] == TASK_ID
    assert kwargs["entry_point"] == "isaaclab_tasks.core.cartpole.cartpole_direct_env:CartpoleEnv"
    cfg_entry_points = kwargs["kwargs"]
    assert set(cfg_entry_points) >= {
        "env_cfg_entry_point",
        "rsl_rl_cfg_entry_point",
        "skrl_cfg_entry_point",
        "rl_games_cfg_entry_point",
    }
    for key, entry_point in cfg_entry_points.items():
        if key.endswith("_entry_point"):
            assert _resolve_entry_point(entry_point).is_file(), f"{key}={entry_point}"


def test_rsl_rl_runner_cfg() -> None:
    """The pipeline looks for checkpoints under ``logs/rsl_rl/custom_cartpole`` every 50 iterations."""
    attributes = _class_attributes(PACKAGE_DIR / "agents" / "rsl_rl_ppo_cfg.py", "CustomCartpolePPORunnerCfg")
    assert attributes["experiment_name"] == "custom_cartpole"
    assert attributes["save_interval"] == 50


@pytest.mark.parametrize("name", ["skrl_ppo_cfg.yaml", "rl_games_ppo_cfg.yaml"])
def test_agent_yaml_parses(name: str) -> None:
    """The YAML agent configs load and name this task's log folder, not the built-in cartpole's."""
    config = yaml.safe_load((PACKAGE_DIR / "agents" / name).read_text())
    if name.startswith("skrl"):
        assert config["agent"]["class"] == "PPO"
        assert config["agent"]["experiment"]["directory"] == "custom_cartpole"
    else:
        assert config["params"]["algo"]["name"] == "a2c_continuous"
        assert config["params"]["config"]["name"] == "custom_cartpole"
        # rl_games needs the minibatch to divide num_envs x horizon_length at the default 4096 envs.
        run = config["params"]["config"]
        assert (4096 * run["horizon_length"]) % run["minibatch_size"] == 0


def test_tarball_of_the_project_folder_holds_pyproject_at_its_top() -> None:
    """Users upload ``tar -czf custom_cartpole.tar.gz -C examples/envs custom_cartpole``; the pipeline installs it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(PROJECT_DIR, arcname=PROJECT_DIR.name)
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r:gz") as archive:
        names = set(archive.getnames())
    assert "custom_cartpole/pyproject.toml" in names
    assert "custom_cartpole/custom_cartpole/__init__.py" in names
    assert "custom_cartpole/custom_cartpole/assets/cartpole.usda" in names


GUIDE_PACKAGE_DIR = PROJECT_DIR.parent / "my_custom_env" / "my_custom_env"


def test_the_guide_style_package_makes_the_same_offline_scene() -> None:
    """The two example packages are standalone on purpose (a user copies one: pyproject with an entry point, or
    the guide's setup.py); the part that keeps them off NVIDIA's asset server must stay the same in both."""
    ours = PACKAGE_DIR / "cartpole_env_cfg.py"
    guide = GUIDE_PACKAGE_DIR / "my_env_cfg.py"
    assert USD_FILE.read_bytes() == (GUIDE_PACKAGE_DIR / "assets" / "cartpole.usda").read_bytes()
    for path, scene, env in ((ours, "CustomCartpoleSceneCfg", "CustomCartpoleEnvCfg"), (guide, "MySceneCfg",
                                                                                         "MyCustomEnvCfg")):
        scene_attributes = _class_attributes(path, scene)
        assert scene_attributes["ground"] is None
        robot = scene_attributes["cartpole"]
        assert isinstance(robot, ast.Call) and ast.unparse(robot.keywords[0]) == "prim_path='{ENV_REGEX_NS}/Robot'"
        scene_call = _class_attributes(path, env)["scene"]
        assert isinstance(scene_call, ast.Call)
        assert {k.arg: ast.literal_eval(k.value) for k in scene_call.keywords} == {
            "num_envs": 4096, "env_spacing": 4.0, "replicate_physics": True, "clone_in_fabric": True}
        # the robot: the built-in cartpole with its spawn's usd_path on the package's own file
        source = path.read_text()
        assert "replace(CARTPOLE_CFG.spawn, usd_path=str(" in source
        assert 'Path(__file__).resolve().parent / "assets" / "cartpole.usda"' in source
