"""The bridge and the DAG each carry a copy of the token store (they are packaged apart); the copies must agree."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from isaaclab_pipeline.vams import token_store as dag_side

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "vams_bridge"))
from vams_bridge import token_store as bridge_side  # noqa: E402


def _code_without_docstrings(path: Path) -> str:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


def test_the_two_copies_are_the_same_code() -> None:
    assert _code_without_docstrings(Path(dag_side.__file__)) == _code_without_docstrings(Path(bridge_side.__file__))


@pytest.mark.parametrize("run_id", ["vams__0123abcd", "manual__2026-11-26T17:00:00+00:00", "a b/c"])
def test_names_agree_and_are_valid_ssm_names(run_id: str) -> None:
    for fn in ("token_parameter", "claim_parameter"):
        name = getattr(dag_side, fn)(dag_side.DEFAULT_PREFIX, run_id)
        assert name == getattr(bridge_side, fn)(bridge_side.DEFAULT_PREFIX, run_id)
        assert name.startswith("/isaac-lab-training/vams/")
        assert all(c.isalnum() or c in "_.-/" for c in name), name
