"""What the runner asks of an RL library (``RLLibrary``), and the pieces the library modules share.

Each of ``rsl_rl.py``, ``skrl.py``, ``rl_games.py`` is a module that satisfies ``RLLibrary``, as Isaac Lab's
``isaaclab_rl`` keeps one module per library: the runner and ``evaluate.py`` never name a library.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass
class Policy:
    """A loaded policy bound to its wrapped env: ``step()`` infers actions and steps the env once.

    ``export(folder)`` writes ``policy.pt`` and ``policy.onnx`` through the library's own runner, when it has one.
    """

    step: Callable[[], None]
    export: Callable[[Path], list[Path]] | None = None


class RLLibrary(Protocol):
    """One RL library as the runner sees it (a module of ``isaaclab_runner.libraries``)."""

    NAME: str
    """The ``--rl_library`` value."""
    AGENT_ENTRY_POINT: str
    """The gym registration key of its agent config (``<lib>_cfg_entry_point``)."""
    CHECKPOINT_PATTERNS: tuple[str, ...]
    """Globs of its checkpoints, relative to the run folder."""
    CHECKPOINT_REGEX: str
    """Regex on a checkpoint file name; group 1 is its iteration (or epoch, or timestep) number."""
    RESUME_CONTINUES_COUNT: bool
    """Whether a run resumed from a checkpoint keeps counting from the checkpoint's number."""
    resumes_by_iteration: bool
    """Whether a retried attempt can continue from a staged checkpoint by its number (``sync.ResumePoint``)."""
    exports_policy: bool
    """Whether ``export_policy`` writes ``exported/policy.{pt,onnx}`` after training (and with evaluate/play)."""

    def device_overrides(self, device: str) -> list[str]:
        """Hydra overrides that put the agent on ``device``."""
        ...

    def train_overrides(self, spec: Mapping[str, Any]) -> list[str]:
        """Hydra overrides every training run of this library needs."""
        ...

    def resume_max_iterations(self, checkpoint: Path, max_iterations: int) -> int:
        """``--max_iterations`` for a run resumed from ``checkpoint`` that should train ``max_iterations`` more."""
        ...

    def stage_resume_v2(self, checkpoint: Path, cwd: Path) -> Path:
        """Isaac Lab 2.x: put ``checkpoint`` where the 2.x script looks for it; return its path."""
        ...

    def resume_args_v2(self, checkpoint: Path) -> tuple[list[str], list[str]]:
        """Isaac Lab 2.x: the flags and the Hydra overrides that resume from the staged ``checkpoint``."""
        ...

    def find_run_dir(self, workdir: Path) -> Path | None:
        """The run folder Isaac Lab created under ``workdir/logs/<library>/``."""
        ...

    def parse_progress(self, line: str, state: dict[str, Any]) -> bool:
        """Update ``state`` from a console line; True when an iteration completed."""
        ...

    def load_policy(self, env: Any, agent_cfg: Any, checkpoint: str) -> Policy:
        """Load ``checkpoint`` for inference on ``env`` (evaluate.py, inside Isaac Lab)."""
        ...

    def export_policy(self, checkpoint: Path, agent_cfg: Mapping[str, Any], out_dir: Path) -> list[Path]:
        """Rebuild the actor from ``checkpoint`` and the agent config (params/agent.yaml) without a simulator and
        write ``policy.pt`` (TorchScript) and ``policy.onnx`` to ``out_dir`` (export.py)."""
        ...


def newest_run_dir(workdir: Path, name: str) -> Path | None:
    """Return the newest ``logs/<name>/<experiment>/<run>`` folder under ``workdir``."""
    runs = [p for p in (workdir / "logs" / name).glob("*/*") if p.is_dir()]
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def checkpoints(library: RLLibrary, run_dir: Path) -> list[Path]:
    """Every checkpoint of ``library`` in ``run_dir``, sorted by path."""
    return sorted({p for pattern in library.CHECKPOINT_PATTERNS for p in run_dir.glob(pattern)})


def latest_checkpoint(library: RLLibrary, run_dir: Path) -> Path | None:
    """The checkpoint of ``run_dir`` with the highest number in its name (None if there is none)."""
    rx = re.compile(library.CHECKPOINT_REGEX)
    numbered = [(int(m.group(1)), p) for p in checkpoints(library, run_dir) if (m := rx.search(p.name))]
    return max(numbered)[1] if numbered else None


def same_max_iterations(checkpoint: Path, max_iterations: int) -> int:
    """For libraries whose ``--max_iterations`` already counts from the loaded checkpoint."""
    return max_iterations


def keep_checkpoint_v2(checkpoint: Path, cwd: Path) -> Path:
    """For libraries whose 2.x script takes the checkpoint's path as it is."""
    return checkpoint


def checkpoint_path_args_v2(checkpoint: Path) -> tuple[list[str], list[str]]:
    """2.x ``--checkpoint PATH`` (skrl, rl_games)."""
    return ["--checkpoint", str(checkpoint)], []


def copy_into(checkpoint: Path, folder: Path) -> Path:
    """Copy ``checkpoint`` into ``folder`` keeping its name; return the copy."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(checkpoint, folder / checkpoint.name))
