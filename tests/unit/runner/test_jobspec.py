"""The runner's job spec: a frozen dataclass loaded from the schema's JSON, readable by its JSON keys too."""

from __future__ import annotations

import dataclasses
import json

import jsonschema
import pytest
from isaaclab_runner.jobspec import CACHE_URI_ENV, JobSpec, load_spec

SPEC = {"jobId": "00000000-0000-0000-0000-000000000001", "mode": "train", "task": "Isaac-Custom-Cartpole-Direct",
        "rlLibrary": "rsl_rl", "seed": 7, "numEnvs": 64, "stagingUri": "/tmp/staging"}


def test_load_fills_the_schema_defaults_and_is_frozen() -> None:
    spec = load_spec(json.dumps(SPEC))
    assert isinstance(spec, JobSpec)
    assert (spec.max_iterations, spec.num_episodes, spec.record_video, spec.device) == (1500, 50, False, "auto")
    assert (spec.num_nodes, spec.gpus_per_node, spec.overrides, spec.cache_uri) == (1, 1, (), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.task = "other"  # type: ignore[misc]
    assert spec.replace(task="Isaac-Ant").task == "Isaac-Ant" and spec.task == SPEC["task"]


def test_the_schema_still_refuses_bad_specs() -> None:
    with pytest.raises(jsonschema.ValidationError):
        load_spec(json.dumps({**SPEC, "numEnvs": 0}))
    with pytest.raises(jsonschema.ValidationError):
        load_spec(json.dumps({**SPEC, "unknownField": 1}))
    with pytest.raises(ValueError, match="unknown job spec fields: unknown_field"):
        JobSpec.from_dict({**SPEC, "unknownField": 1})


def test_reads_as_the_json_object_it_came_from() -> None:
    """Command builders and scripts index a spec by its JSON keys; a spec and its dict read the same."""
    spec = load_spec(json.dumps({**SPEC, "overrides": ["agent.save_interval=25"], "cacheUri": "s3://c/x"}))
    assert spec["numEnvs"] == 64 and spec.get("overrides") == ["agent.save_interval=25"]
    assert spec.get("nothing") is None and "rlLibrary" in spec and "rl_library" not in spec
    as_dict = spec.to_dict()
    assert dict(spec) == as_dict and {**spec, "task": "T"}["task"] == "T"
    assert JobSpec.from_dict(as_dict) == spec
    assert as_dict["cacheUri"] == "s3://c/x" and hash(spec) == hash(JobSpec.from_dict(as_dict))


def test_the_cache_location_comes_from_the_spec_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_URI_ENV, raising=False)
    assert JobSpec.from_dict(SPEC).effective_cache_uri is None
    monkeypatch.setenv(CACHE_URI_ENV, "/var/cache/isaaclab")
    assert JobSpec.from_dict(SPEC).effective_cache_uri == "/var/cache/isaaclab"
    assert JobSpec.from_dict({**SPEC, "cacheUri": "s3://b/cache"}).effective_cache_uri == "s3://b/cache"
