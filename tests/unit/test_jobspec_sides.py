"""The JobSpec is a dataclass on each side (the Airflow side never imports the runner): both hold the schema's fields
with the schema's defaults, so the two copies cannot drift apart."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def test_both_jobspecs_are_the_schema() -> None:
    from isaaclab_pipeline.jobspec import JobSpec as AirflowSpec
    from isaaclab_runner.jobspec import JobSpec as RunnerSpec

    schema = json.loads((REPO / "include" / "schemas" / "job-spec.schema.json").read_text())
    expected = {_snake(k) for k in schema["properties"]}
    defaults = {key: prop["default"] for key, prop in schema["properties"].items() if "default" in prop}
    assert {"device", "numNodes", "overrides"} <= set(defaults)
    for spec in (AirflowSpec, RunnerSpec):
        fields = {f.name: f for f in dataclasses.fields(spec)}
        assert set(fields) == expected, spec.__module__
        for key, default in defaults.items():  # every schema default is the dataclass's, as JSON (a tuple too)
            field = fields[_snake(key)]
            ours = field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default
            assert json.loads(json.dumps(ours)) == default, (spec.__module__, key)
