"""rsl_rl PPO for ``MyCustom-Robot-v0``: small MLPs, checkpoints every 50 iterations."""

from isaaclab.utils import configclass
from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg, RslRlPpoAlgorithmCfg


@configclass
class PPORunnerCfg(RslRlOnPolicyRunnerCfg):
    """PPO runner; logs go to logs/rsl_rl/my_custom_env/<timestamp>/."""

    num_steps_per_env = 16
    max_iterations = 150
    save_interval = 50
    experiment_name = "my_custom_env"
    actor = RslRlMLPModelCfg(hidden_dims=[32, 32], activation="elu", obs_normalization=False,
                             distribution_cfg=RslRlMLPModelCfg.GaussianDistributionCfg(init_std=1.0))
    critic = RslRlMLPModelCfg(hidden_dims=[32, 32], activation="elu", obs_normalization=False)
    algorithm = RslRlPpoAlgorithmCfg(value_loss_coef=1.0, use_clipped_value_loss=True, clip_param=0.2,
                                     entropy_coef=0.005, num_learning_epochs=5, num_mini_batches=4,
                                     learning_rate=1.0e-3, schedule="adaptive", gamma=0.99, lam=0.95,
                                     desired_kl=0.01, max_grad_norm=1.0)
