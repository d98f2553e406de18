"""No function longer than 60 lines in the shipped and developer code (tests are scenarios and may run longer); the
TFRecord reader (``metrics/events.py``), one hand-unrolled parser kept fast on purpose, is the exception."""

from __future__ import annotations

import ast
import subprocess

from pipeline_env import REPO

MAX_LINES = 60
ROOTS = ("dags", "plugins", "task_image", "tools", "vams_bridge", "scripts", "bench", "examples")
EXEMPT = {"plugins/isaaclab_pipeline/metrics/events.py"}


def _modules() -> list[str]:
    """The Python files git tracks (or would track) under the roots."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *ROOTS],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return sorted(p for p in set(listed) if p.endswith(".py") and (REPO / p).is_file())


def long_functions() -> list[str]:
    """``path:line name (N lines)`` of every function over ``MAX_LINES``, outside ``EXEMPT``."""
    found = []
    for path in _modules():
        if path in EXEMPT:
            continue
        tree = ast.parse((REPO / path).read_text(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    found.append(f"{path}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_the_check_reads_the_tree() -> None:
    modules = _modules()
    assert "dags/isaac_lab_training.py" in modules and "plugins/isaaclab_pipeline/steps.py" in modules
    assert len(modules) > 100


def test_no_function_over_60_lines() -> None:
    assert long_functions() == []
