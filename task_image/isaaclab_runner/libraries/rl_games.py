"""rl_games: flags, log folder, checkpoint names, console progress, policy loading and export."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_runner.libraries.base import Policy, checkpoint_path_args_v2, keep_checkpoint_v2, newest_run_dir

NAME = "rl_games"
AGENT_ENTRY_POINT = "rl_games_cfg_entry_point"
# nn/<name>.pth is the best-reward checkpoint; nn/last_<name>_ep_<epoch>_rew_<reward>.pth the periodic/last ones
CHECKPOINT_PATTERNS = ("nn/*.pth",)
CHECKPOINT_REGEX = r"_ep_(\d+)_"
# rl_games restores its epoch counter from the checkpoint and stops at max_epochs (an absolute epoch)
RESUME_CONTINUES_COUNT = True
# a retried attempt starts over: resume by number is rsl_rl's (nn/<name>.pth, the best, has no epoch in its name)
resumes_by_iteration = False
exports_policy = True  # exported/policy.pt and policy.onnx, rebuilt without a simulator (export_policy)

_EPOCH = re.compile(r"epoch:\s*(\d+)/(\d+)")
_FPS = re.compile(r"fps total:\s*(\d+)")


def device_overrides(device: str) -> list[str]:
    """rl_games reads its device from the agent config (``cuda:0`` in most yamls), not from ``--device``."""
    return [f"agent.params.config.device={device}", f"agent.params.config.device_name={device}"]


def train_overrides(spec: Mapping[str, Any]) -> list[str]:
    """No extra overrides: rl_games writes summaries every epoch and checkpoints by ``save_frequency``."""
    return []


def resume_max_iterations(checkpoint: Path, max_iterations: int) -> int:
    """Return ``--max_iterations`` for a resumed run: rl_games' max_epochs counts from epoch 0, not from the load.

    So ``maxIterations`` more epochs after a checkpoint of epoch E means max_epochs = E + maxIterations.
    """
    match = re.search(CHECKPOINT_REGEX, checkpoint.name)
    return max_iterations + (int(match.group(1)) if match else 0)


stage_resume_v2 = keep_checkpoint_v2
resume_args_v2 = checkpoint_path_args_v2


def find_run_dir(workdir: Path) -> Path | None:
    """Return the newest ``logs/rl_games/<name>/<timestamp>`` folder."""
    return newest_run_dir(workdir, NAME)


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from rl_games' per-epoch line (``fps step: ... epoch: 2/3 frames: 512``).

    rl_games prints the epoch as 1-based; the mean reward goes to TensorBoard only.
    """
    match = _EPOCH.search(line)
    if not match:
        return False
    state["iteration"] = int(match.group(1))
    state["maxIterations"] = int(match.group(2))
    if fps := _FPS.search(line):
        state["stepsPerSecond"] = float(fps.group(1))
    return True


def load_policy(env: Any, agent_cfg: dict[str, Any], checkpoint: str) -> Policy:
    """Load ``checkpoint`` into an rl_games player (as Isaac Lab's play_rl_games does); deterministic actions."""
    from isaaclab.utils import index_fill_
    from isaaclab_rl.rl_games import RlGamesVecEnvWrapper, register_rl_games_env
    from rl_games.torch_runner import Runner

    wrapped = RlGamesVecEnvWrapper.from_agent_cfg(env, agent_cfg)
    register_rl_games_env(wrapped)
    params = agent_cfg["params"]
    params["load_checkpoint"], params["load_path"] = True, checkpoint
    params["config"]["num_actors"] = wrapped.unwrapped.num_envs
    runner = Runner()
    runner.load(agent_cfg)
    agent = runner.create_player()
    agent.restore(checkpoint)
    agent.reset()
    obs = wrapped.reset()
    obs = obs["obs"] if isinstance(obs, dict) else obs
    agent.get_batch_size(obs, 1)
    if agent.is_rnn:
        agent.init_rnn()

    def step() -> None:
        nonlocal obs
        actions = agent.get_action(agent.obs_to_torch(obs), is_deterministic=True)
        obs, _, dones, _ = wrapped.step(actions)
        if agent.is_rnn and agent.states is not None and len(dones) > 0:
            for state in agent.states:
                index_fill_(state, dones, 0.0, dim=1)

    return Policy(step)


def export_policy(checkpoint: Path, agent_cfg: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Rebuild rl_games' player (on stand-in spaces), restore the checkpoint, export its deterministic action.

    The exported module is what Isaac Lab's play_rl_games steps with: the observations clipped as the env
    wrapper clips them (``params.env.clip_observations``), the player's input normalization, the network's
    mean, clipped to [-1, 1] and scaled to ``±params.env.clip_actions`` as the player does.
    """
    from isaaclab_runner.export import ExportError, load_checkpoint, save_policy
    from isaaclab_runner.libraries.actors import RlGamesDeterministic

    state = load_checkpoint(checkpoint).get("model") or {}
    if "a2c_network.mu.weight" not in state:
        raise ExportError(f"{checkpoint.name} holds no rl_games continuous actor (a2c_network.mu)")
    mean = state.get("running_mean_std.running_mean")
    obs_dim = int(mean.shape[-1]) if mean is not None else _first_layer_inputs(state)
    player = _player(checkpoint, agent_cfg, obs_dim)
    if player.is_rnn:
        raise ExportError("exporting a recurrent rl_games policy is not supported")
    clip_obs = float(agent_cfg["params"].get("env", {}).get("clip_observations", float("inf")))
    bounds = (player.actions_low, player.actions_high) if player.clip_actions else None
    return save_policy(RlGamesDeterministic(player.model, clip_obs, bounds), obs_dim, out_dir)


def _first_layer_inputs(state: Mapping[str, Any]) -> int:
    from isaaclab_runner.export import linear_sizes

    return linear_sizes(state, "a2c_network.")[0]


def _player(checkpoint: Path, agent_cfg: Mapping[str, Any], obs_dim: int) -> Any:
    """rl_games' own player for ``checkpoint``, on the spaces Isaac Lab's wrapper gives it, with no env."""
    import copy
    import math

    import gym
    import numpy as np
    import torch
    from rl_games.torch_runner import Runner

    from isaaclab_runner.export import load_checkpoint

    cfg = copy.deepcopy(dict(agent_cfg))
    params = cfg["params"]
    act_dim = int(load_checkpoint(checkpoint)["model"]["a2c_network.mu.weight"].shape[0])
    env = params.get("env", {})
    clip_obs, clip_actions = env.get("clip_observations", math.inf), env.get("clip_actions", math.inf)
    params["config"].update(device="cpu", device_name="cpu", num_actors=1, env_info={
        "observation_space": gym.spaces.Box(-clip_obs, clip_obs, (obs_dim,), dtype=np.float32),
        "action_space": gym.spaces.Box(-clip_actions, clip_actions, (act_dim,), dtype=np.float32),
        "agents": 1, "value_size": 1})
    params["load_checkpoint"], params["load_path"] = True, str(checkpoint)
    runner = Runner()
    runner.load(cfg)
    player = runner.create_player()
    player.restore(str(checkpoint))
    player.has_batch_dimension = True
    player.model.to(torch.device("cpu"))
    return player
