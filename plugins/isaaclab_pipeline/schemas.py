"""The project's JSON Schemas (``include/schemas/``): where they are and how they are read. The conf contract
(``config``), the trigger form (``form``), the JobSpec (``jobspec``) and the staging layout (``staging_layout``)
read theirs through here; the runner reads the same files from its own copy (``isaaclab_runner.jobspec``)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

CONF_SCHEMA = "training-config.schema.json"
JOB_SPEC_SCHEMA = "job-spec.schema.json"
STAGING_LAYOUT_SCHEMA = "staging-layout.schema.json"


def schemas_dir() -> Path:
    """Return the folder holding the JSON Schemas.

    ``ISAACLAB_PIPELINE_SCHEMAS_DIR`` wins; else ``include/schemas`` found above this file (repo checkout,
    Astro-style project) or a ``schemas/`` copy inside the package (the MWAA plugins.zip carries one).
    """
    env = os.environ.get("ISAACLAB_PIPELINE_SCHEMAS_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    packaged = here / "schemas"
    if (packaged / CONF_SCHEMA).is_file():
        return packaged
    for parent in here.parents:
        candidate = parent / "include" / "schemas"
        if (candidate / CONF_SCHEMA).is_file():
            return candidate
    raise FileNotFoundError(
        f"{CONF_SCHEMA} not found: set ISAACLAB_PIPELINE_SCHEMAS_DIR to the folder holding include/schemas"
    )


@functools.cache
def load_schema(name: str = CONF_SCHEMA) -> dict[str, Any]:
    """Load one of the project's JSON Schemas by file name."""
    return json.loads((schemas_dir() / name).read_text())
