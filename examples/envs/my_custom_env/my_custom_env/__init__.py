"""Registers ``MyCustom-Robot-v0`` on import, as the user guide's step 3 does (no entry point)."""

import agents
import gymnasium as gym

gym.register(
    id="MyCustom-Robot-v0",
    entry_point=f"{__name__}.my_env:MyCustomEnv",
    disable_env_checker=True,
    kwargs={
        "env_cfg_entry_point": f"{__name__}.my_env_cfg:MyCustomEnvCfg",
        "rsl_rl_cfg_entry_point": f"{agents.__name__}.rsl_rl_ppo_cfg:PPORunnerCfg",
    },
)
