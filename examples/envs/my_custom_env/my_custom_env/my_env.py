"""The guide's Example 1: Isaac Lab's direct cartpole with this package's configuration."""

from isaaclab_tasks.core.cartpole.cartpole_direct_env import CartpoleEnv

from my_custom_env.my_env_cfg import MyCustomEnvCfg


class MyCustomEnv(CartpoleEnv):
    """The built-in cartpole environment; what changes is in ``MyCustomEnvCfg``."""

    cfg: MyCustomEnvCfg

    def __init__(self, cfg: MyCustomEnvCfg, **kwargs):
        super().__init__(cfg, **kwargs)
