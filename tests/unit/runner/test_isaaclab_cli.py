"""Command building for Isaac Lab 3.x and 2.x, version detection, and the 2.x → 3.x task-id aliases."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from isaaclab_runner import isaaclab_cli
from isaaclab_runner.libraries import rl_games, rsl_rl, skrl

SPEC = {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 32, "maxIterations": 5, "seed": 7,
        "overrides": ["agent.save_interval=25"]}
ROOT = Path("/workspace/isaaclab")


@pytest.fixture(autouse=True)
def _isaaclab_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(isaaclab_cli, "isaaclab_executable", lambda python=None: "isaaclab")


def test_3x_train_with_resume_video_and_library_overrides() -> None:
    cmd = isaaclab_cli.train_command({**SPEC, "recordVideo": True}, skrl, "cpu", Path("/w/agent_96.pt"))
    assert cmd[:2] == ["isaaclab", "train"]
    assert cmd[cmd.index("--rl_library") + 1] == "skrl"
    assert cmd[cmd.index("--checkpoint") + 1] == "/w/agent_96.pt"
    assert cmd[cmd.index("--viz") + 1] == "newton_gl" and "--video" in cmd
    assert cmd[-2:] == ["agent.agent.experiment.write_interval=1", "agent.save_interval=25"]
    assert "--no-resume_optimizer_state" not in cmd  # rsl_rl only


def test_rsl_rl_resume_restores_the_optimizer_a_warm_start_does_not() -> None:
    """Isaac Lab's rsl_rl train restores the checkpoint's optimizer unless told not to (its default)."""
    resume = isaaclab_cli.train_command({**SPEC, "init": "resume"}, rsl_rl, "cpu", Path("/w/model_2.pt"))
    assert resume[resume.index("--checkpoint") + 1] == "/w/model_2.pt" and "--no-resume_optimizer_state" not in resume
    warm = isaaclab_cli.train_command({**SPEC, "init": "warm-start"}, rsl_rl, "cpu", Path("/w/warm-start.pt"))
    assert "--no-resume_optimizer_state" in warm and warm[warm.index("--checkpoint") + 1] == "/w/warm-start.pt"


def test_3x_rl_games_resume_passes_the_absolute_epoch_limit() -> None:
    cmd = isaaclab_cli.train_command(SPEC, rl_games, "cpu", Path("/w/last_x_ep_3_rew_1.0_.pth"), max_iterations=8)
    assert cmd[cmd.index("--max_iterations") + 1] == "8"
    assert "agent.params.config.device=cpu" in cmd


def test_evaluate_command_runs_our_module_with_the_episode_budget() -> None:
    cmd = isaaclab_cli.policy_command({**SPEC, "recordVideo": True}, rsl_rl, "cpu", Path("/w/model_4.pt"),
                                      Path("/w/run"), num_episodes=20, export=True)
    assert cmd[:3] == [sys.executable, "-m", "isaaclab_runner.evaluate"]
    assert cmd[cmd.index("--num_episodes") + 1] == "20" and "--num_steps" not in cmd
    assert "--export" in cmd and cmd[cmd.index("--viz") + 1] == "newton_gl"
    export_only = isaaclab_cli.policy_command({**SPEC, "recordVideo": True}, rsl_rl, "cpu", Path("/w/model_4.pt"),
                                              Path("/w/run"), num_steps=0, num_envs=1, export=True)
    assert "--video" not in export_only and export_only[export_only.index("--num_envs") + 1] == "1"


def test_2x_train_command_uses_the_library_script_and_headless() -> None:
    cmd = isaaclab_cli.train_command_v2(SPEC, rsl_rl, "cuda:0", ROOT)
    # through import_tasks, so a package without entry points is imported after isaaclab_tasks
    assert cmd[:5] == ["/workspace/isaaclab/isaaclab.sh", "-p", "-m", "isaaclab_runner.import_tasks",
                       "scripts/reinforcement_learning/rsl_rl/train.py"]
    assert "--headless" in cmd and cmd[cmd.index("--task") + 1] == SPEC["task"]
    assert cmd[cmd.index("--max_iterations") + 1] == "5" and cmd[cmd.index("--device") + 1] == "cuda:0"
    assert "agent.device=cuda:0" in cmd and cmd[-1] == "agent.save_interval=25"


def test_2x_rsl_rl_resume_uses_load_run_and_checkpoint_names() -> None:
    ckpt = Path("/w/isaaclab/logs/rsl_rl/resumed/checkpoint/model_1500.pt")
    cmd = isaaclab_cli.train_command_v2(SPEC, rsl_rl, "cuda:0", ROOT, ckpt)
    i = cmd.index("--resume")
    assert cmd[i:i + 5] == ["--resume", "--load_run", "checkpoint", "--checkpoint", "model_1500.pt"]
    assert "agent.experiment_name=resumed" in cmd


@pytest.mark.parametrize("lib", [skrl, rl_games])
def test_2x_skrl_and_rl_games_resume_take_a_path(lib) -> None:
    cmd = isaaclab_cli.train_command_v2(SPEC, lib, "cuda:0", ROOT, Path("/w/ckpt.pth"))
    assert "--resume" not in cmd and cmd[cmd.index("--checkpoint") + 1] == "/w/ckpt.pth"
    assert cmd[4] == f"scripts/reinforcement_learning/{lib.NAME}/train.py"


def test_2x_play_with_video_is_bounded_by_the_clip() -> None:
    cmd = isaaclab_cli.play_command_v2({**SPEC, "recordVideo": True}, rsl_rl, "cuda:0", ROOT, Path("/w/m.pt"), 300)
    assert cmd[4] == "scripts/reinforcement_learning/rsl_rl/play.py"
    assert cmd[cmd.index("--video_length") + 1] == "300" and "--headless" in cmd


def test_detect_isaaclab_3_here_and_2_from_the_launcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name.startswith("isaaclab") else real(name))
    (tmp_path / "isaaclab.sh").write_text("#!/bin/sh\n")
    assert isaaclab_cli.detect_isaaclab({"ISAACLAB_PATH": str(tmp_path)}) == isaaclab_cli.IsaacLabInstall(2, tmp_path)
    with pytest.raises(FileNotFoundError, match="no Isaac Lab found"):
        isaaclab_cli.detect_isaaclab({"ISAACLAB_PATH": str(tmp_path / "missing")})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert isaaclab_cli.detect_isaaclab({}).major == 3


REGISTERED_3X = ["Isaac-Ant", "Isaac-Cartpole-Direct", "IsaacContrib-Lift-Cube-Franka", "Isaac-Humanoid",
                 "IsaacContrib-Velocity-Rough-AnymalC", "Isaac-Custom-Cartpole-Direct"]


@pytest.mark.parametrize(("seed_id", "expected"), [
    ("Isaac-Ant-v0", "Isaac-Ant"),
    ("Isaac-Cartpole-Direct-v0", "Isaac-Cartpole-Direct"),
    ("Isaac-Lift-Cube-Franka-v0", "IsaacContrib-Lift-Cube-Franka"),
    ("Isaac-Velocity-Rough-Anymal-C-v0", "IsaacContrib-Velocity-Rough-AnymalC"),
    ("Isaac-Humanoid-v0", "Isaac-Humanoid"),
    ("Isaac-Custom-Cartpole-Direct", "Isaac-Custom-Cartpole-Direct"),
    ("Isaac-Nothing-v0", None),
])
def test_seed_2x_ids_resolve_to_3x(seed_id: str, expected: str | None, caplog: pytest.LogCaptureFixture) -> None:
    assert isaaclab_cli.resolve_task_id(seed_id, REGISTERED_3X) == expected
    if expected and expected != seed_id:
        assert "Isaac Lab 2.x id" in caplog.text


def test_job_environment_commands_use_its_interpreter() -> None:
    """The job's own venv runs evaluate; its isaaclab (beside its python) runs training."""
    cmd = isaaclab_cli.policy_command(SPEC, rsl_rl, "cpu", Path("/w/model_4.pt"), Path("/w/run"), num_steps=1,
                                      python="/job/venv/bin/python")
    assert cmd[:3] == ["/job/venv/bin/python", "-m", "isaaclab_runner.evaluate"]


def test_child_env_names_the_package_modules_for_2x() -> None:
    from isaaclab_runner.import_tasks import MODULES_ENV

    assert isaaclab_cli.child_env("cpu", ["my_custom_env", "agents"])[MODULES_ENV] == "my_custom_env,agents"
    assert MODULES_ENV not in isaaclab_cli.child_env("cpu") or MODULES_ENV in __import__("os").environ
