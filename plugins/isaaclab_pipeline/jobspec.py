"""The JobSpec: the one typed request the Airflow side hands the task runner (schema: job-spec.schema.json)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from isaaclab_pipeline.schemas import JOB_SPEC_SCHEMA, load_schema


@dataclass(frozen=True)
class JobSpec:
    """What to run and where to put it; serialized with the schema's camelCase keys."""

    job_id: str
    mode: str
    task: str
    rl_library: str
    seed: int
    num_envs: int
    staging_uri: str
    max_iterations: int = 1500
    num_episodes: int = 50
    record_video: bool = False
    env_package_uri: str | None = None
    checkpoint_uri: str | None = None
    resume_checkpoint_uri: str | None = None
    init: str | None = None  # how resume_checkpoint_uri starts training: "resume" (None) or "warm-start"
    device: str = "auto"
    num_nodes: int = 1
    gpus_per_node: int = 1
    overrides: list[str] = field(default_factory=list)
    cache_uri: str | None = None  # the deployment's cache (Warp kernels, built env-package wheels); None: none
    install_timeout_s: float | None = None  # the env package's install is stopped after this; None: the runner's
    asset_mirror_uri: str | None = None  # the deployment's asset mirror (NVIDIA's Isaac assets); None: NVIDIA's server

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as the schema's JSON object (camelCase keys), validated."""
        out = {_camel(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}
        validate_job_spec(out)
        return out

    def to_json(self) -> str:
        """Return the spec as JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        """Build a spec from its JSON object, validating it first."""
        validate_job_spec(data)
        return cls(**{_snake(k): v for k, v in data.items()})


def validate_job_spec(data: dict[str, Any]) -> None:
    """Raise ``jsonschema.ValidationError`` if ``data`` breaks job-spec.schema.json."""
    import jsonschema

    jsonschema.Draft202012Validator(load_schema(JOB_SPEC_SCHEMA)).validate(data)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
