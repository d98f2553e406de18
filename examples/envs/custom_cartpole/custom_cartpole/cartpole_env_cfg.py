"""Configuration of the "Simple Custom Cartpole Variant".

The variant reuses Isaac Lab's direct-workflow cartpole (its environment class, rewards and observations) and changes
only what a user typically tunes in a first custom task:

* **longer episodes** (7 s instead of 5 s), so the policy has to keep the pole up for longer;
* a **wider track** (the cart may travel 4 m from the centre instead of 3 m before the episode is terminated).

It also makes the task self-contained: the robot is loaded from the USD file shipped inside this package instead of
NVIDIA's asset server, and the ground plane (another download) is dropped, since nothing ever touches it.
"""

from __future__ import annotations

from pathlib import Path

from isaaclab.assets import ArticulationCfg, AssetBaseCfg
from isaaclab.utils import configclass, replace
from isaaclab_assets.robots.cartpole import CARTPOLE_CFG
from isaaclab_tasks.core.cartpole.cartpole_direct_env_cfg import CartpoleEnvCfg, CartpoleSceneCfg

CARTPOLE_USD_PATH = Path(__file__).resolve().parent / "assets" / "cartpole.usda"
"""The robot shipped as package data; resolved from this file so it works wherever the package is installed."""

CUSTOM_CARTPOLE_CFG: ArticulationCfg = replace(
    CARTPOLE_CFG, spawn=replace(CARTPOLE_CFG.spawn, usd_path=str(CARTPOLE_USD_PATH))
)
"""The built-in cartpole articulation (actuators, initial state, physics properties) on the local USD file."""


@configclass
class CustomCartpoleSceneCfg(CartpoleSceneCfg):
    """Cartpole scene that needs no network access."""

    # The built-in ground plane is a USD file on NVIDIA's asset server; the cartpole never touches it.
    ground: AssetBaseCfg | None = None
    cartpole: ArticulationCfg = replace(CUSTOM_CARTPOLE_CFG, prim_path="{ENV_REGEX_NS}/Robot")


@configclass
class CustomCartpoleEnvCfg(CartpoleEnvCfg):
    """Direct-workflow cartpole with longer episodes and a wider track.

    With the inherited ``sim.dt = 1/120`` s and ``decimation = 2`` an episode lasts at most
    ``7.0 / (2 / 120) = 420`` policy steps.
    """

    # 7 s rather than 5 s: longer balancing, yet still learnt by rsl_rl within 150 iterations on 64 CPU envs.
    episode_length_s = 7.0
    # 4 m rather than 3 m; the shipped track is 10 m long (joint limits +/- 5 m), so the limit is reachable.
    max_cart_pos = 4.0

    scene: CustomCartpoleSceneCfg = CustomCartpoleSceneCfg(
        num_envs=4096, env_spacing=4.0, replicate_physics=True, clone_in_fabric=True
    )
