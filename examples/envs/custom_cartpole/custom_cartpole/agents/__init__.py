"""Agent configurations for ``Isaac-Custom-Cartpole-Direct``, one per RL library.

rsl_rl reads a Python config class (``rsl_rl_ppo_cfg``); skrl and rl_games read the YAML files next to this module,
which the task registration names as ``custom_cartpole.agents:<file>.yaml``.
"""
