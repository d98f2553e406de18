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
