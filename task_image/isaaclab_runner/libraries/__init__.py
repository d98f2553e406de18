"""One small module per RL library; this table maps the conf's ``rlLibrary`` to it (imported lazily).

Each module defines:
    NAME: the ``--rl_library`` value.
    CHECKPOINT_PATTERNS: globs of its checkpoints, relative to the run folder.
    device_overrides(device) -> list[str]: Hydra overrides that put the agent on ``device``.
    find_run_dir(workdir) -> Path | None: the run folder Isaac Lab created under ./logs/<library>/.
    parse_progress(line, state) -> bool: update ``state`` (iteration, maxIterations, meanReward, ...) from a
        console line; True when an iteration completed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULES = {
    "rsl_rl": "isaaclab_runner.libraries.rsl_rl",
}


def get_library(name: str) -> ModuleType:
    """Return the module for RL library ``name``."""
    if name not in _MODULES:
        raise ValueError(f"rlLibrary {name!r} is not supported by this runner; use one of {', '.join(_MODULES)}")
    return importlib.import_module(_MODULES[name])
