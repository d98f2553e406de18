"""What each room may import (docs/architecture.md, "What each room may import"), read from the source with ``ast``:
function-level imports count too, so a lazy import cannot slip an upward arrow past the check."""

from __future__ import annotations

import ast
from pathlib import Path

from pipeline_env import REPO

PLUGINS = REPO / "plugins"
RUNNER = REPO / "task_image"

# the rooms that talk to Airflow's runtime (tasks, the triggerer, the api-server, callbacks): nothing below imports them
TOP = ("steps", "operators", "triggers", "ui", "vams")
# what the domain rooms stand on: they import only one another
FOUNDATION = ("schemas", "staging_layout", "compat", "aws_retry", "jobspec", "overrides", "storage", "readers", "links",
              "settings", "metrics")


def _imports(root: Path, package: str) -> dict[str, set[str]]:
    """module (dotted, without the package) -> every absolute module name it imports, anywhere in the file."""
    found: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts[1:-1] if parts[-1] == "__init__" else parts[1:])
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolved against this module's package
                    base = [package, *parts[1:-1]][: len(parts) - node.level]
                    prefix = ".".join([*base, node.module] if node.module else base)
                else:
                    prefix = node.module or ""
                names.add(prefix)
                names.update(f"{prefix}.{alias.name}" for alias in node.names)
        found[module] = names
    return found


def _rooms(names: set[str], package: str) -> set[str]:
    """The package's own modules among ``names`` (dotted, without the package)."""
    return {n.removeprefix(f"{package}.") for n in names if n.startswith(f"{package}.")}


def _room(module: str) -> str:
    return module.split(".")[0]


AIRFLOW_SIDE = _imports(PLUGINS, "isaaclab_pipeline")
RUNNER_SIDE = _imports(RUNNER, "isaaclab_runner")


def test_the_check_reads_both_sides() -> None:
    assert {"steps", "operators", "backends.batch", "ui.runs", "metrics.events", "readers"} <= set(AIRFLOW_SIDE)
    assert {"runner", "packages", "libraries.rsl_rl", "export"} <= set(RUNNER_SIDE)
    assert "isaaclab_pipeline.storage" in AIRFLOW_SIDE["publish"]  # an import the walker must see


def test_the_sides_never_import_each_other() -> None:
    for module, names in AIRFLOW_SIDE.items():
        assert not {n for n in names if n.split(".")[0] in ("isaaclab_runner", "isaaclab", "torch")}, module
    for module, names in RUNNER_SIDE.items():
        assert not {n for n in names if n.split(".")[0] in ("airflow", "isaaclab_pipeline")}, module


def test_nothing_below_the_airflow_facing_rooms_imports_them() -> None:
    below = {m: names for m, names in AIRFLOW_SIDE.items() if _room(m) not in TOP}
    assert {"storage", "resolve", "backends.batch"} <= set(below)
    for module, names in below.items():
        upward = {n for n in _rooms(names, "isaaclab_pipeline") if _room(n) in TOP}
        assert not upward, f"{module} imports {sorted(upward)}"


def test_the_top_rooms_import_only_what_they_must() -> None:
    # operators hand the wait to the trigger; the ui and vams rooms import their own modules; nothing else crosses
    allowed = {"operators": {"triggers"}, "ui": {"ui"}, "vams": {"vams"}, "steps": set(), "triggers": set()}
    top = {m: names for m, names in AIRFLOW_SIDE.items() if _room(m) in TOP}
    assert {_room(m) for m in top} == set(TOP)
    for module, names in top.items():
        crossing = {_room(n) for n in _rooms(names, "isaaclab_pipeline") if _room(n) in TOP} - allowed[_room(module)]
        assert not crossing, f"{module} imports {sorted(crossing)}"


def test_the_foundation_stands_on_itself() -> None:
    foundation = {m: names for m, names in AIRFLOW_SIDE.items() if _room(m) in FOUNDATION}
    assert {_room(m) for m in foundation} == set(FOUNDATION)
    for module, names in foundation.items():
        above = {n for n in _rooms(names, "isaaclab_pipeline") if _room(n) not in FOUNDATION}
        assert not above, f"{module} imports {sorted(above)}"


def test_operators_triggers_and_steps_never_name_a_backend() -> None:
    concrete = [m for m in AIRFLOW_SIDE if m.startswith("backends.") and m not in ("backends.base",)]
    assert {"backends.batch", "backends.local"} <= set(concrete)
    for module in ("operators", "triggers", "steps"):
        named = {n for n in _rooms(AIRFLOW_SIDE[module], "isaaclab_pipeline")
                 if any(n == c or n.startswith(f"{c}.") for c in concrete if c != "backends.staging_archive")}
        assert not named, f"{module} imports {sorted(named)}"


def test_the_metrics_package_needs_nothing_of_the_pipeline() -> None:
    metrics = {m: names for m, names in AIRFLOW_SIDE.items() if _room(m) == "metrics"}
    assert {"metrics.events", "metrics.table", "metrics.convert"} <= set(metrics)
    for module, names in metrics.items():
        assert {_room(n) for n in _rooms(names, "isaaclab_pipeline")} <= {"metrics"}, module
