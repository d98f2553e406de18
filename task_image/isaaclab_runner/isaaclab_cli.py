"""Build Isaac Lab's own command lines (the ``isaaclab`` CLI of Isaac Lab 3.x) from a job spec."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def isaaclab_executable() -> str:
    """Return the ``isaaclab`` console script of this environment (beside the interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "isaaclab"
    if beside.exists():
        return str(beside)
    found = shutil.which("isaaclab")
    if not found:
        raise FileNotFoundError("the `isaaclab` command is not installed; pip install 'isaaclab[rsl-rl]==3.0.0'")
    return found


def resolve_device(requested: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is visible, else ``cpu``."""
    if requested != "auto":
        return requested
    import torch  # only to ask whether a GPU is there

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def train_command(spec: dict[str, Any], library: ModuleType, device: str, checkpoint: Path | None = None) -> list[str]:
    """Return ``isaaclab train ...`` for the spec: flags first, then Hydra overrides."""
    cmd = [
        isaaclab_executable(), "train",
        "--rl_library", library.NAME,
        "--task", spec["task"],
        "--num_envs", str(spec["numEnvs"]),
        "--max_iterations", str(spec["maxIterations"]),
        "--seed", str(spec["seed"]),
        "--device", device,
    ]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    return cmd + library.device_overrides(device) + list(spec.get("overrides", []))


def child_env(device: str) -> dict[str, str]:
    """Environment of the Isaac Lab process: on a CPU one OpenMP thread, or torch's threads fight the simulator."""
    env = dict(os.environ)
    if device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"  # progress must reach the log as it happens
    env.setdefault("NO_COLOR", "1")  # plain text in the Airflow log (rich and rsl_rl honour it or are stripped)
    return env
