"""rl_games: flags, log folder, checkpoint names and console progress."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

NAME = "rl_games"
AGENT_ENTRY_POINT = "rl_games_cfg_entry_point"
# nn/<name>.pth is the best-reward checkpoint; nn/last_<name>_ep_<epoch>_rew_<reward>.pth the periodic/last ones
CHECKPOINT_PATTERNS = ("nn/*.pth",)
CHECKPOINT_REGEX = r"_ep_(\d+)_"
# rl_games restores its epoch counter from the checkpoint and stops at max_epochs (an absolute epoch)
RESUME_CONTINUES_COUNT = True

_EPOCH = re.compile(r"epoch:\s*(\d+)/(\d+)")
_FPS = re.compile(r"fps total:\s*(\d+)")


def device_overrides(device: str) -> list[str]:
    """rl_games reads its device from the agent config (``cuda:0`` in most yamls), not from ``--device``."""
    return [f"agent.params.config.device={device}", f"agent.params.config.device_name={device}"]


def train_overrides(spec: dict[str, Any]) -> list[str]:
    """No extra overrides: rl_games writes summaries every epoch and checkpoints by ``save_frequency``."""
    return []


def resume_max_iterations(checkpoint: Path, max_iterations: int) -> int:
    """Return ``--max_iterations`` for a resumed run: rl_games' max_epochs counts from epoch 0, not from the load.

    So ``maxIterations`` more epochs after a checkpoint of epoch E means max_epochs = E + maxIterations.
    """
    match = re.search(CHECKPOINT_REGEX, checkpoint.name)
    return max_iterations + (int(match.group(1)) if match else 0)


def find_run_dir(workdir: Path) -> Path | None:
    """Return the newest ``logs/rl_games/<name>/<timestamp>`` folder."""
    runs = [p for p in (workdir / "logs" / NAME).glob("*/*") if p.is_dir()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from rl_games' per-epoch line (``fps step: ... epoch: 2/3 frames: 512``).

    rl_games prints the epoch as 1-based; the mean reward goes to TensorBoard only.
    """
    match = _EPOCH.search(line)
    if not match:
        return False
    state["iteration"] = int(match.group(1))
    state["maxIterations"] = int(match.group(2))
    if fps := _FPS.search(line):
        state["stepsPerSecond"] = float(fps.group(1))
    return True
