"""One small module per RL library; this table maps the conf's ``rlLibrary`` to it (imported lazily).

Each module defines:
    NAME: the ``--rl_library`` value.
    AGENT_ENTRY_POINT: the gym registration key of its agent config (``<lib>_cfg_entry_point``).
    CHECKPOINT_PATTERNS: globs of its checkpoints, relative to the run folder.
    CHECKPOINT_REGEX: regex on a checkpoint file name; group 1 is its iteration (or timestep) number.
    RESUME_CONTINUES_COUNT: whether a run resumed from a checkpoint keeps counting from the checkpoint's number.
    device_overrides(device) -> list[str]: Hydra overrides that put the agent on ``device``.
    train_overrides(spec) -> list[str]: Hydra overrides every training run of this library needs.
    find_run_dir(workdir) -> Path | None: the run folder Isaac Lab created under ./logs/<library>/.
    parse_progress(line, state) -> bool: update ``state`` (iteration, maxIterations, meanReward, ...) from a
        console line; True when an iteration completed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = {
    "rsl_rl": "isaaclab_runner.libraries.rsl_rl",
    "skrl": "isaaclab_runner.libraries.skrl",
    "rl_games": "isaaclab_runner.libraries.rl_games",
}


SUPPORTED = tuple(_MODULES)


def get_library(name: str) -> ModuleType:
    """Return the module for RL library ``name``."""
    if name not in _MODULES:
        raise ValueError(f"rlLibrary {name!r} is not supported by this runner; use one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])
