"""One small module per RL library (as Isaac Lab's ``isaaclab_rl``); this table maps the conf's ``rlLibrary`` to it.

Each module satisfies ``base.RLLibrary``: its train command options (``device_overrides``, ``train_overrides``,
resume rules), its checkpoints (``CHECKPOINT_PATTERNS``, ``CHECKPOINT_REGEX``), its policy loader
(``load_policy``, used by evaluate.py), whether it exports a policy (``exports_policy``) and whether a retried
attempt resumes by iteration (``resumes_by_iteration``). Modules are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import cast

from isaaclab_runner.libraries.base import RLLibrary

_MODULES = {
    "rsl_rl": "isaaclab_runner.libraries.rsl_rl",
    "skrl": "isaaclab_runner.libraries.skrl",
    "rl_games": "isaaclab_runner.libraries.rl_games",
}


SUPPORTED = tuple(_MODULES)


def get_library(name: str) -> RLLibrary:
    """Return the module for RL library ``name``."""
    if name not in _MODULES:
        raise ValueError(f"rlLibrary {name!r} is not supported by this runner; use one of {', '.join(_MODULES)}")
    return cast(RLLibrary, importlib.import_module(_MODULES[name]))
