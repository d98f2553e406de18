"""The job spec on the runner side: a frozen dataclass, validated against include/schemas/job-spec.schema.json.

The Airflow side has the same dataclass (``isaaclab_pipeline.jobspec.JobSpec``); the two share only the schema
file. Attributes are snake_case (``spec.num_envs``); the spec also reads as a mapping of the schema's camelCase
keys (``spec["numEnvs"]``), so the command builders take a spec or a plain dict alike.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_NAME = "job-spec.schema.json"
# a deployment may name its cache location here instead of in the spec (the spec's cacheUri wins)
CACHE_URI_ENV = "ISAACLAB_RUNNER_CACHE_URI"


@dataclass(frozen=True)
class JobSpec(Mapping[str, Any]):
    """One job: what to run (mode, task, library, sizes) and where its inputs and outputs are."""

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
    overrides: tuple[str, ...] = field(default_factory=tuple)
    cache_uri: str | None = None
    install_timeout_s: float | None = None
    asset_mirror_uri: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Build a spec from its JSON object (camelCase keys; absent optional fields take their defaults)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {_snake(k): v for k, v in data.items()}
        unknown = sorted(k for k in values if k not in names)
        if unknown:
            raise ValueError(f"unknown job spec fields: {', '.join(unknown)}")
        if "overrides" in values:
            values["overrides"] = tuple(values["overrides"] or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as the schema's JSON object (camelCase keys)."""
        return {_camel(f.name): _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> JobSpec:
        """Return a copy with ``changes`` (snake_case names) applied."""
        return dataclasses.replace(self, **changes)

    @property
    def effective_cache_uri(self) -> str | None:
        """The cache location: the spec's ``cacheUri``, else ``ISAACLAB_RUNNER_CACHE_URI``, else None (no cache)."""
        return self.cache_uri or os.environ.get(CACHE_URI_ENV) or None

    def __getitem__(self, key: str) -> Any:
        name = _snake(key) if isinstance(key, str) else None
        if name not in _FIELD_NAMES or _camel(name) != key:  # the JSON keys only (``numEnvs``, not ``num_envs``)
            raise KeyError(key)
        return _plain(getattr(self, name))

    def __iter__(self) -> Iterator[str]:
        return (_camel(name) for name in _FIELD_NAMES)

    def __len__(self) -> int:
        return len(_FIELD_NAMES)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(JobSpec))


def schema_path() -> Path:
    """Find the job spec schema: ``ISAACLAB_RUNNER_SCHEMAS_DIR``, a copy in the package, or include/schemas above."""
    env = os.environ.get("ISAACLAB_RUNNER_SCHEMAS_DIR")
    if env:
        return Path(env) / SCHEMA_NAME
    here = Path(__file__).resolve().parent
    for candidate in (here / "schemas", *(p / "include" / "schemas" for p in here.parents)):
        if (candidate / SCHEMA_NAME).is_file():
            return candidate / SCHEMA_NAME
    raise FileNotFoundError(f"{SCHEMA_NAME} not found; set ISAACLAB_RUNNER_SCHEMAS_DIR")


def load_spec(text: str) -> JobSpec:
    """Parse and validate a job spec; optional fields take their defaults.

    :raises jsonschema.ValidationError: if the spec breaks the schema.
    """
    import jsonschema

    data = json.loads(text)
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    for key, prop in schema["properties"].items():
        if key not in data and "default" in prop:
            data[key] = prop["default"]
    return JobSpec.from_dict(data)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
