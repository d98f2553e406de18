"""steps.py's one home for MLflow: nothing is imported without a tracking URI, and each call reaches its module."""

from __future__ import annotations

import sys

import pytest
from isaaclab_pipeline import steps
from isaaclab_pipeline.settings import PipelineSettings


def test_no_tracking_uri_calls_nothing_and_imports_no_tracking_module(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("isaaclab_pipeline.tracking.mlflow", "isaaclab_pipeline.tracking.registry"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert steps._mlflow(PipelineSettings(), "log_trial", "exp") is None
    assert steps._mlflow(PipelineSettings(), "registry.record", "run") is None
    assert "isaaclab_pipeline.tracking.mlflow" not in sys.modules
    assert "isaaclab_pipeline.tracking.registry" not in sys.modules


@pytest.mark.parametrize(("call", "module", "function"), [
    ("log_trial", "isaaclab_pipeline.tracking.mlflow", "log_trial"),
    ("registry.record", "isaaclab_pipeline.tracking.registry", "record"),
])
def test_each_call_reaches_its_module_with_the_tracking_uri_first(monkeypatch: pytest.MonkeyPatch, call: str,
                                                                  module: str, function: str) -> None:
    import importlib

    seen = []
    monkeypatch.setattr(importlib.import_module(module), function,
                        lambda *args, **kwargs: seen.append((args, kwargs)) or "answer")
    settings = PipelineSettings(mlflow_tracking_uri="http://127.0.0.1:5000")
    assert steps._mlflow(settings, call, "a", b=1) == "answer"
    assert seen == [(("http://127.0.0.1:5000", "a"), {"b": 1})]
