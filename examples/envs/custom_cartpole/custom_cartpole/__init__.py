"""Example custom Isaac Lab task: a cartpole with longer episodes and a wider track.

Importing this package registers the gymnasium task ``Isaac-Custom-Cartpole-Direct``. Isaac Lab's CLI imports it
through the ``isaaclab.tasks`` entry point declared in ``pyproject.toml``, so after ``pip install`` the task is
available to ``isaaclab train --task Isaac-Custom-Cartpole-Direct``.

The environment class is Isaac Lab's built-in direct-workflow cartpole; only the configuration (and the robot's
USD file) come from this package.
"""

from __future__ import annotations

import gymnasium as gym

TASK_ID = "Isaac-Custom-Cartpole-Direct"
"""Gymnasium id of the task registered by this package."""

gym.register(
    id=TASK_ID,
    entry_point="isaaclab_tasks.core.cartpole.cartpole_direct_env:CartpoleEnv",
    disable_env_checker=True,
    kwargs={
        "env_cfg_entry_point": "custom_cartpole.cartpole_env_cfg:CustomCartpoleEnvCfg",
        "rsl_rl_cfg_entry_point": "custom_cartpole.agents.rsl_rl_ppo_cfg:CustomCartpolePPORunnerCfg",
        "skrl_cfg_entry_point": "custom_cartpole.agents:skrl_ppo_cfg.yaml",
        "rl_games_cfg_entry_point": "custom_cartpole.agents:rl_games_ppo_cfg.yaml",
        "default_agent": "rsl_rl",
    },
)
