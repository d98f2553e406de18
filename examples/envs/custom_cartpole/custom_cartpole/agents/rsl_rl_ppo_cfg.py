"""rsl_rl PPO configuration for ``Isaac-Custom-Cartpole-Direct``.

Adapted from Isaac Lab's built-in cartpole runner config; the hyperparameters are written out (not inherited) so the
file shows everything a user may want to tune.
"""

from __future__ import annotations

from isaaclab.utils import configclass
from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg


@configclass
class CustomCartpolePPORunnerCfg(RslRlOnPolicyRunnerCfg):
    """PPO runner with small MLPs; 150 iterations balance the pole for the whole 7 s episode."""

    num_steps_per_env = 16
    max_iterations = 150
    save_interval = 50
    # Logs go to logs/rsl_rl/custom_cartpole/<timestamp>/ relative to the working directory.
    experiment_name = "custom_cartpole"
    actor = RslRlMLPModelCfg(
        hidden_dims=[32, 32],
        activation="elu",
        obs_normalization=False,
        distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0),
    )
    critic = RslRlMLPModelCfg(
        hidden_dims=[32, 32],
        activation="elu",
        obs_normalization=False,
    )
    algorithm = RslRlPpoAlgorithmCfg(
        value_loss_coef=1.0,
        use_clipped_value_loss=True,
        clip_param=0.2,
        entropy_coef=0.005,
        num_learning_epochs=5,
        num_mini_batches=4,
        learning_rate=1.0e-3,
        schedule="adaptive",
        gamma=0.99,
        lam=0.95,
        desired_kl=0.01,
        max_grad_norm=1.0,
    )
