"""skrl: flags, log folder, checkpoint names, console progress, policy loading and export."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_runner.libraries.base import (
    Policy,
    checkpoint_path_args_v2,
    keep_checkpoint_v2,
    newest_run_dir,
    same_max_iterations,
)

NAME = "skrl"
AGENT_ENTRY_POINT = "skrl_cfg_entry_point"
# the run folder holds checkpoints/agent_<timestep>.pt and, when skrl tracks rewards, checkpoints/best_agent.pt
CHECKPOINT_PATTERNS = ("checkpoints/agent_*.pt", "checkpoints/best_agent.pt")
CHECKPOINT_REGEX = r"agent_(\d+)\.pt$"
# skrl's trainer restarts its timestep counter on load: a resumed run numbers checkpoints from 0 again
RESUME_CONTINUES_COUNT = False
resumes_by_iteration = False  # timestep numbers restart on load: a retried attempt starts over
exports_policy = True  # exported/policy.pt and policy.onnx, rebuilt without a simulator (export_policy)

SHORT_RUN = 100  # iterations below which skrl's automatic write interval can be 0

# tqdm progress of skrl's SequentialTrainer: " 40%|████   | 38/96 [00:00<00:01, 44.69it/s]"
_TQDM = re.compile(r"(\d+)/(\d+) \[")


def device_overrides(device: str) -> list[str]:
    """skrl's agent follows the simulation's ``--device``; an ``agent.agent.device`` override is rejected."""
    return []


def train_overrides(spec: Mapping[str, Any]) -> list[str]:
    """Short runs write TensorBoard scalars every timestep; longer ones keep the agent config's interval.

    skrl's ``write_interval: auto`` is int(timesteps / 100): 0 (never) when iterations x rollouts < 100, so a
    short run would leave no events and no metrics.csv. From 100 iterations on, ``auto`` gives ~100 points.
    (A Hydra interpolation such as ``${agent.agent.rollouts}`` reaches skrl as an unresolved string.)
    """
    return ["agent.agent.experiment.write_interval=1"] if spec.get("maxIterations", 0) < SHORT_RUN else []


resume_max_iterations = same_max_iterations
stage_resume_v2 = keep_checkpoint_v2
resume_args_v2 = checkpoint_path_args_v2


def find_run_dir(workdir: Path) -> Path | None:
    """Return the newest ``logs/skrl/<directory>/<timestamp>_<algorithm>_<framework>`` folder."""
    return newest_run_dir(workdir, NAME)


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from skrl's tqdm bar (timesteps); return True when the bar moved.

    The bar counts timesteps (iterations x rollouts); progress is reported in iterations of the spec.
    """
    match = _TQDM.search(line)
    if not match:
        return False
    done, total = int(match.group(1)), int(match.group(2))
    if total <= 0:
        return False
    max_iterations = int(state.get("maxIterations") or total)
    state["iteration"] = done * max_iterations // total
    state["timesteps"] = done
    return True


def load_policy(env: Any, agent_cfg: dict[str, Any], checkpoint: str) -> Policy:
    """Load ``checkpoint`` into skrl's runner (as Isaac Lab's play_skrl does); actions are the policy's means."""
    from isaaclab_rl.skrl import SkrlVecEnvWrapper, import_skrl_runner

    wrapped = SkrlVecEnvWrapper(env, ml_framework="torch")
    agent_cfg["trainer"]["close_environment_at_exit"] = False
    agent_cfg["agent"]["experiment"]["write_interval"] = 0  # no training logs or checkpoints from an evaluation
    agent_cfg["agent"]["experiment"]["checkpoint_interval"] = 0
    runner = import_skrl_runner("torch")(wrapped, agent_cfg)
    runner.agent.load(checkpoint)
    runner.agent.enable_training_mode(False, apply_to_models=True)
    obs, _ = wrapped.reset()
    states = wrapped.state()

    def step() -> None:
        nonlocal obs, states
        outputs = runner.agent.act(obs, states, timestep=0, timesteps=0)
        obs, *_ = wrapped.step(outputs[-1].get("mean_actions", outputs[0]))  # deterministic actions
        states = wrapped.state()

    return Policy(step)



def export_policy(checkpoint: Path, agent_cfg: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Rebuild the agent with skrl's own runner (on stand-in spaces), load the checkpoint, export the policy.

    The exported module is what the agent's ``act`` gives as ``mean_actions`` (the deterministic action Isaac
    Lab's play uses): the observation preprocessor, the policy network's mean, clipped when the model clips it.
    """
    import copy

    from isaaclab_runner.export import ExportError, linear_sizes, load_checkpoint, save_policy
    from isaaclab_runner.libraries.actors import SkrlMeanActions

    state = load_checkpoint(checkpoint)
    policy_state = state.get("policy")
    models = agent_cfg.get("models") or {}
    if not policy_state or "policy" not in models:
        raise ExportError(f"{checkpoint.name} or params/agent.yaml has no skrl policy model")
    if "STATES" in repr(models["policy"].get("network", "")):
        raise ExportError("the skrl policy reads the env's states, not only its observations")
    obs_dim, last = linear_sizes(policy_state)
    log_std = policy_state.get("log_std_parameter")
    act_dim = int(log_std.shape[-1]) if log_std is not None else last
    cfg = copy.deepcopy(dict(agent_cfg))
    cfg["trainer"] = {**cfg.get("trainer", {}), "close_environment_at_exit": False}
    cfg["agent"]["experiment"] = {**cfg["agent"].get("experiment", {}), "write_interval": 0,
                                  "checkpoint_interval": 0, "directory": str(out_dir / ".skrl")}
    agent = _runner_on_spaces(cfg, obs_dim, act_dim).agent
    agent.load(str(checkpoint))
    agent.enable_training_mode(False, apply_to_models=True)
    policy = agent.policy
    clip = (policy._g_min_actions, policy._g_max_actions) if getattr(policy, "_g_clip_mean_actions", False) else None
    return save_policy(SkrlMeanActions(agent._observation_preprocessor, policy, clip), obs_dim, out_dir)


def _runner_on_spaces(cfg: dict[str, Any], obs_dim: int, act_dim: int) -> Any:
    """skrl's Runner (models, preprocessors, agent) for an env of these sizes, with no env behind it."""
    import gymnasium
    import numpy as np
    import torch
    from skrl.utils.runner.torch import Runner

    class Spaces:  # what skrl's Runner and trainer read of an env
        observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (obs_dim,))
        action_space = gymnasium.spaces.Box(-np.inf, np.inf, (act_dim,))
        state_space = None
        num_envs = num_agents = 1
        device = torch.device("cpu")

        def close(self) -> None:
            """Nothing to close."""

    return Runner(Spaces(), cfg)
