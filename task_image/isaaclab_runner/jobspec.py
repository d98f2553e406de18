"""Load and validate a job spec against include/schemas/job-spec.schema.json (shared with the Airflow side)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SCHEMA_NAME = "job-spec.schema.json"


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


def load_spec(text: str) -> dict[str, Any]:
    """Parse and validate a job spec; defaults of optional fields are filled in.

    Raises:
        jsonschema.ValidationError: if the spec breaks the schema.
    """
    import jsonschema

    spec = json.loads(text)
    schema = json.loads(schema_path().read_text())
    jsonschema.Draft202012Validator(schema).validate(spec)
    for key, prop in schema["properties"].items():
        if key not in spec and "default" in prop:
            spec[key] = prop["default"]
    spec.setdefault("maxIterations", 1500)
    spec.setdefault("numEpisodes", 50)
    spec.setdefault("recordVideo", False)
    return spec
