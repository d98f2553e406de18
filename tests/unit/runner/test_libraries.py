"""Per-library modules: progress from real console lines, device and training overrides, resume counting."""

from __future__ import annotations

from pathlib import Path

import pytest
from isaaclab_runner.libraries import SUPPORTED, get_library, rl_games, rsl_rl, skrl


def test_dispatch_table_has_the_three_libraries() -> None:
    assert SUPPORTED == ("rsl_rl", "skrl", "rl_games")
    for name in SUPPORTED:
        lib = get_library(name)
        assert name == lib.NAME and f"{name}_cfg_entry_point" == lib.AGENT_ENTRY_POINT
    with pytest.raises(ValueError, match="rlLibrary 'sb3' is not supported.*rsl_rl, skrl, rl_games"):
        get_library("sb3")


def test_skrl_progress_from_its_tqdm_bar() -> None:
    state = {"maxIterations": 3}
    # skrl's SequentialTrainer bar, as the runner reads it (text mode turns tqdm's \r into line ends)
    assert not skrl.parse_progress("[skrl:INFO] Seed: 1", state)
    assert skrl.parse_progress(" 47%|████▋     | 45/96 [00:01<00:01, 49.86it/s]", state)
    assert (state["iteration"], state["timesteps"]) == (1, 45)
    assert skrl.parse_progress("100%|██████████| 96/96 [00:01<00:00, 53.78it/s]", state)
    assert state["iteration"] == 3


def test_skrl_writes_events_once_per_iteration_and_follows_the_sim_device() -> None:
    assert skrl.train_overrides({"maxIterations": 3}) == ["agent.agent.experiment.write_interval=1"]
    assert skrl.train_overrides({"maxIterations": 1500}) == []  # skrl's auto interval gives ~100 points
    assert skrl.device_overrides("cpu") == []  # agent.agent.device is rejected by skrl's PPO config


def test_rl_games_progress_and_device() -> None:
    state: dict = {}
    line = "fps step: 1123 fps step and policy inference: 882 fps total: 235 epoch: 2/3 frames: 512"
    assert rl_games.parse_progress(line, state)
    assert (state["iteration"], state["maxIterations"], state["stepsPerSecond"]) == (2, 3, 235.0)
    assert not rl_games.parse_progress("=> saving checkpoint 'nn/last_custom_cartpole_ep_3_rew__-4.59_.pth'", state)
    assert rl_games.device_overrides("cpu") == ["agent.params.config.device=cpu",
                                                "agent.params.config.device_name=cpu"]


def test_rl_games_resume_counts_from_the_checkpoint_epoch() -> None:
    # rl_games stops at max_epochs (absolute) and restores the epoch: 10 more epochs after epoch 3 is 13
    assert rl_games.resume_max_iterations(Path("last_custom_cartpole_ep_3_rew__-4.59_.pth"), 10) == 13
    assert rl_games.resume_max_iterations(Path("custom_cartpole.pth"), 10) == 10


@pytest.mark.parametrize(("lib", "layout", "expected"), [
    (rsl_rl, "logs/rsl_rl/custom_cartpole/2026-01-01_00-00-00/model_2.pt", "2026-01-01_00-00-00"),
    (skrl, "logs/skrl/custom_cartpole/2026-01-01_00-00-00_ppo_torch/checkpoints/agent_96.pt",
     "2026-01-01_00-00-00_ppo_torch"),
    (rl_games, "logs/rl_games/custom_cartpole/2026-01-01_00-00-00/nn/custom_cartpole.pth", "2026-01-01_00-00-00"),
])
def test_run_folder_and_checkpoint_patterns(tmp_path: Path, lib, layout: str, expected: str) -> None:
    ckpt = tmp_path / layout
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    run_dir = lib.find_run_dir(tmp_path)
    assert run_dir is not None and run_dir.name == expected
    assert [p for pat in lib.CHECKPOINT_PATTERNS for p in run_dir.glob(pat)] == [ckpt]


def test_checkpoint_numbers() -> None:
    import re

    assert re.search(rsl_rl.CHECKPOINT_REGEX, "model_1500.pt").group(1) == "1500"
    assert re.search(skrl.CHECKPOINT_REGEX, "agent_96.pt").group(1) == "96"
    assert re.search(rl_games.CHECKPOINT_REGEX, "last_cc_ep_150_rew_4.9.pth").group(1) == "150"
    assert (rsl_rl.RESUME_CONTINUES_COUNT, skrl.RESUME_CONTINUES_COUNT, rl_games.RESUME_CONTINUES_COUNT) == (
        True, False, True)


def test_every_library_module_satisfies_the_protocol() -> None:
    """The runner and evaluate.py reach a library only through base.RLLibrary's members."""
    from isaaclab_runner.libraries.base import RLLibrary

    members = [name for name in vars(RLLibrary) if not name.startswith("_")]
    members += list(RLLibrary.__annotations__)
    for name in SUPPORTED:
        lib = get_library(name)
        missing = [m for m in members if not hasattr(lib, m)]
        assert not missing, (name, missing)
    assert [get_library(n).resumes_by_iteration for n in SUPPORTED] == [True, False, False]


def test_latest_checkpoint_is_the_highest_number(tmp_path: Path) -> None:
    from isaaclab_runner.libraries.base import latest_checkpoint

    for name in ("model_0.pt", "model_50.pt", "model_149.pt", "model_99.pt"):
        (tmp_path / name).write_bytes(b"x")
    assert latest_checkpoint(rsl_rl, tmp_path) == tmp_path / "model_149.pt"
    assert latest_checkpoint(skrl, tmp_path) is None


def test_2x_resume_staging_per_library(tmp_path: Path) -> None:
    ckpt = tmp_path / "inputs" / "model_7.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"w")
    staged = rsl_rl.stage_resume_v2(ckpt, tmp_path / "isaaclab")
    assert staged == tmp_path / "isaaclab/logs/rsl_rl/resumed/checkpoint/model_7.pt" and staged.read_bytes() == b"w"
    assert skrl.stage_resume_v2(ckpt, tmp_path) == ckpt and rl_games.resume_args_v2(ckpt) == (
        ["--checkpoint", str(ckpt)], [])
