"""Longer episodes and a wider track (the guide's Example 1), on a USD file shipped in the package."""

from pathlib import Path

from isaaclab.assets import ArticulationCfg, AssetBaseCfg
from isaaclab.utils import configclass, replace
from isaaclab_assets.robots.cartpole import CARTPOLE_CFG
from isaaclab_tasks.core.cartpole.cartpole_direct_env_cfg import CartpoleEnvCfg, CartpoleSceneCfg

USD = Path(__file__).resolve().parent / "assets" / "cartpole.usda"
ROBOT: ArticulationCfg = replace(CARTPOLE_CFG, spawn=replace(CARTPOLE_CFG.spawn, usd_path=str(USD)))


@configclass
class MySceneCfg(CartpoleSceneCfg):
    """No ground plane (an asset-server download the cartpole never touches); the robot from the package."""

    ground: AssetBaseCfg | None = None
    cartpole: ArticulationCfg = replace(ROBOT, prim_path="{ENV_REGEX_NS}/Robot")


@configclass
class MyCustomEnvCfg(CartpoleEnvCfg):
    """Episodes of 10 s and a track of +/- 5 m, as in the guide."""

    episode_length_s = 10.0
    max_cart_pos = 5.0
    scene: MySceneCfg = MySceneCfg(num_envs=4096, env_spacing=4.0, replicate_physics=True, clone_in_fabric=True)
