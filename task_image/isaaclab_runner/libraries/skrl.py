"""skrl: flags, log folder, checkpoint names and console progress."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

NAME = "skrl"
AGENT_ENTRY_POINT = "skrl_cfg_entry_point"
# the run folder holds checkpoints/agent_<timestep>.pt and, when skrl tracks rewards, checkpoints/best_agent.pt
CHECKPOINT_PATTERNS = ("checkpoints/agent_*.pt", "checkpoints/best_agent.pt")
CHECKPOINT_REGEX = r"agent_(\d+)\.pt$"
# skrl's trainer restarts its timestep counter on load: a resumed run numbers checkpoints from 0 again
RESUME_CONTINUES_COUNT = False

SHORT_RUN = 100  # iterations below which skrl's automatic write interval can be 0

# tqdm progress of skrl's SequentialTrainer: " 40%|████   | 38/96 [00:00<00:01, 44.69it/s]"
_TQDM = re.compile(r"(\d+)/(\d+) \[")


def device_overrides(device: str) -> list[str]:
    """skrl's agent follows the simulation's ``--device``; an ``agent.agent.device`` override is rejected."""
    return []


def train_overrides(spec: dict[str, Any]) -> list[str]:
    """Short runs write TensorBoard scalars every timestep; longer ones keep the agent config's interval.

    skrl's ``write_interval: auto`` is int(timesteps / 100): 0 (never) when iterations x rollouts < 100, so a
    short run would leave no events and no metrics.csv. From 100 iterations on, ``auto`` gives ~100 points.
    (A Hydra interpolation such as ``${agent.agent.rollouts}`` reaches skrl as an unresolved string.)
    """
    return ["agent.agent.experiment.write_interval=1"] if spec.get("maxIterations", 0) < SHORT_RUN else []


def find_run_dir(workdir: Path) -> Path | None:
    """Return the newest ``logs/skrl/<directory>/<timestamp>_<algorithm>_<framework>`` folder."""
    runs = [p for p in (workdir / "logs" / NAME).glob("*/*") if p.is_dir()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from skrl's tqdm bar (timesteps); return True when the bar moved.

    The bar counts timesteps (iterations x rollouts); progress is reported in iterations of the spec.
    """
    match = _TQDM.search(line)
    if not match:
        return False
    done, total = int(match.group(1)), int(match.group(2))
    if total <= 0:
        return False
    max_iterations = int(state.get("maxIterations") or total)
    state["iteration"] = done * max_iterations // total
    state["timesteps"] = done
    return True
