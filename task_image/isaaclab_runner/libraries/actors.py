"""Deterministic actors for export (torch modules; imported only by the library exporters, never by the runner's
start-up path): observations in, the action the library's play would take out."""

from __future__ import annotations

from typing import Any

import torch


class SkrlMeanActions(torch.nn.Module):
    """skrl: observations → the agent's observation preprocessor → the policy's mean action.

    That is the ``mean_actions`` of ``agent.act`` (what Isaac Lab's play_skrl steps with), clipped to
    ``[low, high]`` when the model clips its mean actions.
    """

    def __init__(self, preprocessor: Any, policy: Any, clip: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.preprocessor = preprocessor
        self.policy = policy
        self.clip = clip

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Return the deterministic actions for ``obs`` [N, obs_dim]."""
        mean, _ = self.policy.compute({"observations": self.preprocessor(obs), "states": None}, role="policy")
        return mean if self.clip is None else torch.clamp(mean, min=self.clip[0], max=self.clip[1])


class RlGamesDeterministic(torch.nn.Module):
    """rl_games: observations → clipped as Isaac Lab's wrapper clips them → the model's input normalization →
    the network's mean (``mus``) → clipped to [-1, 1] and rescaled to the action bounds when the player clips.

    That is ``player.get_action(obs, is_deterministic=True)`` on what the env wrapper hands the player. The
    normalization is ``RunningMeanStd``'s evaluation formula on its statistics (rl_games scripts that module,
    which ``torch.export`` cannot trace): ``clamp((x - mean) / sqrt(var + eps), -5, 5)``.
    """

    def __init__(self, model: Any, clip_obs: float, bounds: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        super().__init__()
        self.network = model.a2c_network
        self.clip_obs = clip_obs
        self.normalize = bool(model.normalize_input)
        stats = model.running_mean_std if self.normalize else None
        self.epsilon = float(stats.epsilon) if stats is not None else 0.0
        self.register_buffer("obs_mean", stats.running_mean.detach().float().clone() if stats is not None
                             else torch.zeros(1))
        self.register_buffer("obs_var", stats.running_var.detach().float().clone() if stats is not None
                             else torch.ones(1))
        self.rescale = bounds is not None
        low, high = bounds if bounds is not None else (torch.zeros(1), torch.zeros(1))
        self.register_buffer("half_range", ((high - low) / 2.0).float())
        self.register_buffer("middle", ((high + low) / 2.0).float())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Return the deterministic actions for ``obs`` [N, obs_dim]."""
        obs = torch.clamp(obs, -self.clip_obs, self.clip_obs)
        if self.normalize:
            obs = torch.clamp((obs - self.obs_mean) / torch.sqrt(self.obs_var + self.epsilon), -5.0, 5.0)
        mu = self.network({"obs": obs, "rnn_states": None})[0]
        if not self.rescale:
            return mu
        return torch.clamp(mu, -1.0, 1.0) * self.half_range + self.middle
