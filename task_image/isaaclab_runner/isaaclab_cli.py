"""Build Isaac Lab's own command lines from a job spec: the ``isaaclab`` CLI of 3.x, or the 2.x scripts.

Isaac Lab 3.x (``pip install isaaclab``) has one console script: ``isaaclab train --rl_library L ...``.
Isaac Lab 2.x (the ``nvcr.io/nvidia/isaac-lab:2.x`` image) runs one script per library through its launcher:
``/workspace/isaaclab/isaaclab.sh -p scripts/reinforcement_learning/<lib>/train.py --task T --headless ...``,
resumes with ``--resume --load_run <run> --checkpoint <file>`` (rsl_rl) or ``--checkpoint PATH`` (skrl,
rl_games), and names tasks with a ``-v0`` suffix. ``detect_isaaclab`` tells them apart; ``resolve_task_id``
accepts the seed's 2.x ids on 3.x through an alias table.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from isaaclab_runner.libraries.base import RLLibrary

log = logging.getLogger(__name__)

ISAACLAB_2_ROOT = "/workspace/isaaclab"  # where the 2.x container has the repository and isaaclab.sh

# 2.x ids the seed and VAMS users write → 3.x ids (isaaclab_tasks' CHANGELOG); other ``-v0`` ids follow the rule
# in ``task_candidates`` (drop ``-v0``; tasks moved to isaaclab_tasks_contrib gained the ``IsaacContrib-`` prefix).
TASK_ALIASES = {
    "Isaac-Ant-v0": "Isaac-Ant",
    "Isaac-Cartpole-v0": "Isaac-Cartpole",
    "Isaac-Cartpole-Direct-v0": "Isaac-Cartpole-Direct",
    "Isaac-Humanoid-v0": "Isaac-Humanoid",
    "Isaac-Reach-Franka-v0": "Isaac-Reach-Franka",
    "Isaac-Lift-Cube-Franka-v0": "IsaacContrib-Lift-Cube-Franka",
    "Isaac-Velocity-Flat-Anymal-C-v0": "IsaacContrib-Velocity-Flat-AnymalC",
    "Isaac-Velocity-Rough-Anymal-C-v0": "IsaacContrib-Velocity-Rough-AnymalC",
    "Isaac-Velocity-Flat-Anymal-D-v0": "Isaac-Velocity-Flat-AnymalD",
    "Isaac-Velocity-Rough-Anymal-D-v0": "Isaac-Velocity-Rough-AnymalD",
}


@dataclass(frozen=True)
class IsaacLabInstall:
    """Which Isaac Lab this environment has: ``major`` 3 (the ``isaaclab`` CLI) or 2 (``isaaclab.sh`` scripts)."""

    major: int
    root: Path | None = None  # the 2.x repository (holds isaaclab.sh and scripts/)


def detect_isaaclab(env: Mapping[str, str] | None = None) -> IsaacLabInstall:
    """Detect the installed Isaac Lab: 3.x has the ``isaaclab.cli`` module, 2.x the ``isaaclab.sh`` launcher.

    :param env: the environment to read ``ISAACLAB_PATH`` from (default: ``os.environ``).
    :raises FileNotFoundError: if neither is installed.
    """
    env = os.environ if env is None else env
    if importlib.util.find_spec("isaaclab") is not None and importlib.util.find_spec("isaaclab.cli") is not None:
        return IsaacLabInstall(3)
    root = Path(env.get("ISAACLAB_PATH") or ISAACLAB_2_ROOT)
    if (root / "isaaclab.sh").is_file():
        return IsaacLabInstall(2, root)
    raise FileNotFoundError("no Isaac Lab found: install isaaclab 3.x (`pip install 'isaaclab[rsl-rl]==3.0.0'`) or "
                            f"set ISAACLAB_PATH to an Isaac Lab 2.x checkout (looked for {root}/isaaclab.sh)")


def isaaclab_executable(python: str | Path | None = None) -> str:
    """Return the ``isaaclab`` console script beside ``python`` (default: this interpreter), else on PATH."""
    beside = Path(python or sys.executable).parent / "isaaclab"
    if beside.exists():
        return str(beside)
    found = shutil.which("isaaclab")
    if not found:
        raise FileNotFoundError("the `isaaclab` command is not installed; pip install 'isaaclab[rsl-rl]==3.0.0'")
    return found


def task_candidates(task: str) -> list[str]:
    """Return the 3.x ids a task id may mean, the id itself first."""
    out = [task]
    if task in TASK_ALIASES:
        out.append(TASK_ALIASES[task])
    if task.endswith("-v0"):
        stem = task[: -len("-v0")]
        out += [stem, stem.replace("-Play", "")]
        if stem.startswith("Isaac-"):
            out.append("IsaacContrib-" + stem[len("Isaac-"):])
    return list(dict.fromkeys(out))


def resolve_task_id(task: str, registered: Iterable[str]) -> str | None:
    """Return the registered id ``task`` stands for (itself, or its 3.x alias with a warning), else None."""
    known = set(registered)
    for candidate in task_candidates(task):
        if candidate in known:
            if candidate != task:
                log.warning("task %r is an Isaac Lab 2.x id; running the Isaac Lab 3 task %r", task, candidate)
            return candidate
    return None


def resolve_device(requested: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is visible, else ``cpu``."""
    if requested != "auto":
        return requested
    import torch  # only to ask whether a GPU is there

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def train_command(spec: Mapping[str, Any], library: RLLibrary, device: str, checkpoint: Path | None = None,
                  max_iterations: int | None = None, python: str | Path | None = None) -> list[str]:
    """Return ``isaaclab train ...`` (3.x) for the spec: flags first, then Hydra overrides.

    :param spec: the job spec.
    :param library: the RL library module (``libraries.get_library``).
    :param device: ``cpu`` or ``cuda[:N]``.
    :param checkpoint: a local checkpoint to resume from.
    :param max_iterations: overrides the spec's ``maxIterations`` (a resumed rl_games run counts from epoch 0).
    :param python: the job environment's interpreter (its ``isaaclab`` sees the env package).
    """
    cmd = [
        isaaclab_executable(python), "train",
        "--rl_library", library.NAME,
        "--task", spec["task"],
        "--num_envs", str(spec["numEnvs"]),
        "--max_iterations", str(max_iterations or spec["maxIterations"]),
        "--seed", str(spec["seed"]),
        "--device", device,
    ]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
        if library.NAME == "rsl_rl" and spec.get("init") == "warm-start":
            cmd += ["--no-resume_optimizer_state"]  # a fresh optimizer (Isaac Lab restores the checkpoint's by default)
    if spec.get("recordVideo"):  # a clip every video_interval steps (Isaac Lab's default 2000), kit-less
        cmd += ["--video", "--video_length", "200", "--viz", "newton_gl"]
    return cmd + library.device_overrides(device) + library.train_overrides(spec) + list(spec.get("overrides", []))


def policy_command(spec: Mapping[str, Any], library: RLLibrary, device: str, checkpoint: Path, output_dir: Path, *,
                   num_episodes: int | None = None, num_steps: int | None = None, num_envs: int | None = None,
                   export: bool = False, video_length: int = 200, python: str | Path | None = None) -> list[str]:
    """Return the ``isaaclab_runner.evaluate`` command (evaluate: ``num_episodes``; play/export: ``num_steps``).

    Kit-less video needs a visualizer to capture from: ``--viz newton_gl`` (Mesa EGL on a CPU). ``python`` is the
    job environment's interpreter (default: this one).
    """
    cmd = [
        str(python or sys.executable), "-m", "isaaclab_runner.evaluate",
        "--rl_library", library.NAME,
        "--task", spec["task"],
        "--checkpoint", str(checkpoint),
        "--num_envs", str(num_envs or spec["numEnvs"]),
        "--seed", str(spec["seed"]),
        "--device", device,
        "--output_dir", str(output_dir),
    ]
    cmd += ["--num_episodes", str(num_episodes)] if num_episodes is not None else ["--num_steps", str(num_steps or 0)]
    if export:
        cmd.append("--export")
    if spec.get("recordVideo") and (num_episodes or num_steps):
        cmd += ["--video", "--video_length", str(video_length), "--viz", "newton_gl"]
    return cmd + library.device_overrides(device) + list(spec.get("overrides", []))


def _v2_python(root: Path) -> list[str]:
    """2.x's Python, running a script through ``import_tasks`` so the env package's modules are imported."""
    return [str(root / "isaaclab.sh"), "-p", "-m", "isaaclab_runner.import_tasks"]


def train_command_v2(spec: Mapping[str, Any], library: RLLibrary, device: str, root: Path,
                     checkpoint: Path | None = None) -> list[str]:
    """Return the Isaac Lab 2.x equivalent of ``train_command``.

    ``isaaclab.sh -p scripts/reinforcement_learning/<lib>/train.py --task T --num_envs N --max_iterations M
    --seed S --headless --device D``. A resumed run adds the library's ``resume_args_v2``: rsl_rl's
    ``--resume --load_run <run folder> --checkpoint <file name>``, which 2.x looks up under
    ``logs/rsl_rl/<experiment_name>/`` (the runner's ``stage_resume_v2`` copied the checkpoint there);
    skrl and rl_games take ``--checkpoint PATH``.
    """
    cmd = [
        *_v2_python(root), f"scripts/reinforcement_learning/{library.NAME}/train.py",
        "--task", spec["task"],
        "--num_envs", str(spec["numEnvs"]),
        "--max_iterations", str(spec["maxIterations"]),
        "--seed", str(spec["seed"]),
        "--headless",
        "--device", device,
    ]
    overrides = list(library.device_overrides(device))
    if checkpoint is not None:
        flags, resume_overrides = library.resume_args_v2(checkpoint)
        cmd += flags
        overrides += resume_overrides
    return cmd + overrides + list(spec.get("overrides", []))


def play_command_v2(spec: Mapping[str, Any], library: RLLibrary, device: str, root: Path, checkpoint: Path,
                    video_length: int = 200) -> list[str]:
    """Return the Isaac Lab 2.x ``play.py`` command; with video it ends after the first clip (2.x play's rule)."""
    cmd = [
        *_v2_python(root), f"scripts/reinforcement_learning/{library.NAME}/play.py",
        "--task", spec["task"],
        "--num_envs", str(spec["numEnvs"]),
        "--checkpoint", str(checkpoint),
        "--headless",
        "--device", device,
    ]
    if spec.get("recordVideo"):
        cmd += ["--video", "--video_length", str(video_length)]
    return cmd + library.device_overrides(device) + list(spec.get("overrides", []))


def child_env(device: str, task_modules: Iterable[str] = ()) -> dict[str, str]:
    """Environment of the Isaac Lab process: on a CPU one OpenMP thread, or torch's threads fight the simulator.

    ``task_modules`` are the env package's modules, for Isaac Lab 2.x (``import_tasks``); 3.x imports them
    through the ``isaaclab.tasks`` entry points.
    """
    from isaaclab_runner.import_tasks import MODULES_ENV

    env = dict(os.environ)
    if task_modules:
        env[MODULES_ENV] = ",".join(task_modules)
    if device == "cpu":
        env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"  # progress must reach the log as it happens
    env.setdefault("NO_COLOR", "1")  # plain text in the Airflow log (rich and rsl_rl honour it or are stripped)
    return env
