"""Warm-start: a checkpoint's weights only, so training starts with a fresh optimizer and the iteration count at 0.

``trainingConfig.init`` (the JobSpec's ``init``) chooses how ``resumeCheckpointUri`` starts a training:

- ``resume`` (the default): Isaac Lab's ``--checkpoint`` as it is: weights, optimizer state and iteration count
  (rsl_rl continues from the checkpoint's ``iter``: ``model_<iter + n>.pt``).
- ``warm-start``: the same weights in a copy of the checkpoint without its optimizer state and with its counters
  (rsl_rl ``iter``, rl_games ``epoch``/``frame``) at 0, so the libraries' own loaders start a new training from them.
  Isaac Lab's rsl_rl train is also given ``--no-resume_optimizer_state`` (it restores the optimizer by default); it
  always restores the iteration, hence the copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WARM_START = "warm-start"
# counters of the libraries' checkpoints (rsl_rl: iter; rl_games: epoch, frame); skrl keeps none (timesteps restart)
COUNTERS = ("iter", "epoch", "frame")


def weights_only(checkpoint: Path, out_dir: Path) -> Path:
    """Write ``checkpoint``'s weights without optimizer state and with its counters at 0; return the new file.

    The new file keeps a neutral name (``warm-start.pt``/``.pth``): libraries that read a number from the name
    (rl_games' epoch) must not see the old one.

    Args:
        checkpoint: the fetched checkpoint (a pickled dict of state dicts, as every supported library saves).
        out_dir: where the copy goes.

    Returns:
        The path of the copy.

    Raises:
        ValueError: if the checkpoint is not a dict (nothing to strip).
    """
    import torch

    state: Any = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint.name} is not a checkpoint dict ({type(state).__name__}); warm-start needs the "
                         "library's training checkpoint (model_<n>.pt, agent_<n>.pt, *.pth)")
    kept = {k: v for k, v in state.items() if "optimizer" not in k}
    for key in COUNTERS:
        if key in kept:
            kept[key] = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"warm-start{checkpoint.suffix}"
    torch.save(kept, target)
    return target
