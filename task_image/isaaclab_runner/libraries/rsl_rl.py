"""rsl_rl: flags, log folder, checkpoint names and console progress."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

NAME = "rsl_rl"
AGENT_ENTRY_POINT = "rsl_rl_cfg_entry_point"
CHECKPOINT_PATTERNS = ("model_*.pt",)
CHECKPOINT_REGEX = r"model_(\d+)\.pt$"
# rsl_rl restores current_learning_iteration on load and runs max_iterations more: model_<it> numbers continue
RESUME_CONTINUES_COUNT = True

_ITERATION = re.compile(r"Learning iteration (\d+)/(\d+)")
_FIELDS = {
    "meanReward": re.compile(r"Mean reward:\s+(-?[\d.]+(?:e[-+]?\d+)?)"),
    "meanEpisodeLength": re.compile(r"Mean episode length:\s+(-?[\d.]+)"),
    "stepsPerSecond": re.compile(r"Steps per second:\s+(\d+)"),
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def device_overrides(device: str) -> list[str]:
    """rsl_rl's agent defaults to cuda:0 whatever ``--device`` says, so pin it to the simulation's device."""
    return [f"agent.device={device}"]


def train_overrides(spec: dict[str, Any]) -> list[str]:
    """No extra overrides: rsl_rl logs every iteration and saves every ``save_interval`` and at the end."""
    return []


def find_run_dir(workdir: Path) -> Path | None:
    """Return the newest ``logs/rsl_rl/<experiment>/<timestamp>[_<run_name>]`` folder."""
    runs = [p for p in (workdir / "logs" / NAME).glob("*/*") if p.is_dir()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from one console line of rsl_rl's logger; return True when an iteration's block ends.

    rsl_rl prints one block per iteration: a ``Learning iteration it/total`` header, the statistics, and an
    ``ETA:`` footer. Only progress is read from the console; metrics come from the TensorBoard events.
    """
    line = _ANSI.sub("", line)
    if match := _ITERATION.search(line):
        # rsl_rl counts from 0 and prints it/total; report completed iterations as 1-based
        state["iteration"] = int(match.group(1)) + 1
        state["maxIterations"] = int(match.group(2))
        return False
    for key, pattern in _FIELDS.items():
        if match := pattern.search(line):
            state[key] = float(match.group(1))
            return False
    return line.strip().startswith("ETA:") and "iteration" in state
