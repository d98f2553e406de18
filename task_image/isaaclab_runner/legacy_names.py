"""Isaac Lab 2.x names in an env package's code, found before anything installs or trains.

The user guide's examples are written for Isaac Lab 2.x (``from isaaclab_tasks.direct.cartpole import ...``,
``self.pole_dof_idx``); on Isaac Lab 3 they fail deep inside the job with a bare ModuleNotFoundError or
AttributeError. The package's source is read (``ast``, nothing imported) and the first such name stops the job with
its 3.x name. Checked against the installed ``isaaclab_tasks`` 3.0.0 and Isaac Lab's "Migrating to 3.0" page (the
2.0 ``omni.isaac.lab*`` → ``isaaclab*`` renames come from "Migrating to 2.0").

An import alias (``isaaclab_tasks.direct.cartpole`` → ``isaaclab_tasks.core.cartpole``) is not offered: the 3.x
modules are laid out differently (the env and its config in two modules, configs with other fields), so an alias
would turn a clear error into a half-working import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# 2.x module (prefix) -> what to import on Isaac Lab 3
MODULES: dict[str, str] = {
    "isaaclab_tasks.direct.cartpole": "isaaclab_tasks.core.cartpole.cartpole_direct_env (CartpoleEnv) and "
                                      "isaaclab_tasks.core.cartpole.cartpole_direct_env_cfg (CartpoleEnvCfg)",
    "isaaclab_tasks.direct": "isaaclab_tasks.core.<task> (e.g. isaaclab_tasks.core.cartpole.cartpole_direct_env)",
    "isaaclab_tasks.manager_based": "isaaclab_tasks.core.<task> (e.g. "
                                    "isaaclab_tasks.core.cartpole.cartpole_manager_env_cfg)",
    "omni.isaac.lab_tasks": "isaaclab_tasks",
    "omni.isaac.lab_assets": "isaaclab_assets",
    "omni.isaac.lab": "isaaclab",
}
# 2.x attribute of a built-in env -> its 3.x name
ATTRIBUTES: dict[str, str] = {
    "pole_dof_idx": "_pole_dof_idx",
    "cart_dof_idx": "_cart_dof_idx",
}


@dataclass(frozen=True)
class LegacyName:
    """One 2.x name: where it is, what it is, what to write instead."""

    file: str
    line: int
    old: str
    new: str

    def message(self) -> str:
        """The error's first line names the 3.x name."""
        return (f"Isaac Lab 3 name needed: use {self.new} instead of {self.old} ({self.file}:{self.line}); "
                f"{self.old} is an Isaac Lab 2.x name that this image (Isaac Lab 3) does not have")


def _module_hit(name: str) -> tuple[str, str] | None:
    for old in sorted(MODULES, key=len, reverse=True):  # the most specific entry first
        if name == old or name.startswith(old + "."):
            return old, MODULES[old]
    return None


def scan(project: Path) -> list[LegacyName]:
    """Every 2.x name in the package's ``.py`` files, in file and line order.

    An attribute counts only where the package never assigns it itself (``self.pole_dof_idx = ...`` is the
    package's own attribute).
    """
    hits: list[LegacyName] = []
    reads: list[tuple[str, int, str]] = []
    assigned: set[str] = set()
    for path in sorted(project.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(errors="replace"), str(path))
        except SyntaxError:
            continue  # pip or the import reports it
        rel = path.relative_to(project).as_posix()
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                hit = _module_hit(name)
                if hit:
                    hits.append(LegacyName(rel, node.lineno, name, hit[1] if name == hit[0] else
                                           f"{hit[1]} (for {name})"))
            if isinstance(node, ast.Attribute) and node.attr in ATTRIBUTES:
                if isinstance(node.ctx, ast.Store):
                    assigned.add(node.attr)
                else:
                    reads.append((rel, node.lineno, node.attr))
    hits += [LegacyName(f, n, f"self.{a}", f"self.{ATTRIBUTES[a]}") for f, n, a in reads if a not in assigned]
    return sorted(hits, key=lambda h: (h.file, h.line))
