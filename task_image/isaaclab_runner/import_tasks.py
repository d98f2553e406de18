"""Run an Isaac Lab 2.x script with the env package's modules imported right after ``isaaclab_tasks``.

Isaac Lab 2.x's ``train.py``/``play.py`` import only ``isaaclab_tasks`` (no entry points), and only after Isaac
Sim has started, so an env package's ``gym.register`` must run at that moment, not earlier (its config modules
import Isaac Lab, which needs the running app). No library hooks a module's import; this finder does, once.

Run as ``isaaclab.sh -p -m isaaclab_runner.import_tasks <script.py> <script args...>`` with
``ISAACLAB_RUNNER_TASK_MODULES=mod_a,mod_b``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODULES_ENV = "ISAACLAB_RUNNER_TASK_MODULES"
TRIGGER = "isaaclab_tasks"


class ImportAfter(importlib.abc.MetaPathFinder):
    """Import ``modules`` as soon as the module ``trigger`` has finished executing."""

    def __init__(self, trigger: str, modules: Sequence[str]) -> None:
        self.trigger = trigger
        self.modules = list(modules)

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        """Let the other finders find ``trigger``, then wrap its loader so ``modules`` follow it."""
        if name != self.trigger:
            return None
        sys.meta_path.remove(self)  # once, and not while looking the trigger up below
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module
        modules = self.modules

        def exec_then_import(module: ModuleType) -> None:
            exec_module(module)
            for extra in modules:
                importlib.import_module(extra)

        spec.loader.exec_module = exec_then_import  # type: ignore[method-assign]
        return spec


def install(modules: Sequence[str], trigger: str = TRIGGER) -> None:
    """Arrange for ``modules`` to be imported right after ``trigger`` (at once if it is imported already)."""
    if not modules:
        return
    if trigger in sys.modules:
        for name in modules:
            importlib.import_module(name)
        return
    sys.meta_path.insert(0, ImportAfter(trigger, modules))


def main(argv: list[str] | None = None) -> None:
    """Run the script ``argv[0]`` as ``__main__`` with the rest as its arguments."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m isaaclab_runner.import_tasks SCRIPT [ARGS...]")
    install([m for m in os.environ.get(MODULES_ENV, "").split(",") if m])
    script = Path(argv[0])
    sys.argv = [str(script), *argv[1:]]
    sys.path.insert(0, str(script.resolve().parent))  # as `python script.py` does (2.x imports cli_args)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
