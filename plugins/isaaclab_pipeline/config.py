"""The conf contract: schema loading, mode-dependent defaults, all-errors validation and the DAG's Params.

The JSON Schema in ``include/schemas/training-config.schema.json`` is the single source of truth: the trigger
form (Params), this validator and the docs are all derived from it.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DAG_ID = "isaac-lab-training"
CONF_SCHEMA = "training-config.schema.json"
JOB_SPEC_SCHEMA = "job-spec.schema.json"
# Namespace of job UUIDs: uuid5(namespace, "<dag_id>/<run_id>") is stable across task retries and re-runs.
JOB_UUID_NAMESPACE = uuid.UUID("6f1f3f5e-2a57-4a4e-9d0e-7c1b8a0e5a11")


class ConfigValidationError(ValueError):
    """The conf breaks the contract; ``problems`` lists every problem, each naming the field and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid conf ({} problem{}):\n  - {}".format(
            len(problems), "" if len(problems) == 1 else "s", "\n  - ".join(problems)))


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


def unwrap(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Accept the seed's workflow wrapper ``{"workflowName": ..., "parameters": {...}}`` as well as a bare conf.

    The trigger form also sends the unused Params as nulls; those are dropped here.
    """
    conf = {k: v for k, v in conf.items() if v is not None}
    if "parameters" in conf or "workflowName" in conf:
        name = conf.get("workflowName", DAG_ID)
        if name != DAG_ID:
            raise ConfigValidationError([f"workflowName: is {name!r}; this pipeline is {DAG_ID!r}"])
        inner = conf.get("parameters")
        if not isinstance(inner, Mapping):
            raise ConfigValidationError(["parameters: the workflow wrapper needs a 'parameters' object"])
        extra = sorted(set(conf) - {"workflowName", "parameters"})
        if extra:
            raise ConfigValidationError([f"{k}: put it inside 'parameters' when using the workflow wrapper"
                                         for k in extra])
        return dict(inner)
    return dict(conf)


def apply_defaults(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Fill every missing field with its schema default; ``x-defaultByMode`` defaults follow the mode."""
    schema = load_schema()
    out = copy.deepcopy(dict(conf))
    for section in ("trainingConfig", "computeConfig"):
        if not isinstance(out.get(section, {}), dict):
            continue  # the validator reports the wrong type
        values = out.setdefault(section, {})
        props = schema["properties"][section]["properties"]
        mode = values.get("mode", props.get("mode", {}).get("default", "train"))
        for key, prop in props.items():
            if key in values:
                continue
            if "default" in prop:
                values[key] = prop["default"]
            elif mode in prop.get("x-defaultByMode", {}):
                values[key] = prop["x-defaultByMode"][mode]
    return out


def _field_path(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(conf)"


def _describe(error: Any, schema: Mapping[str, Any]) -> list[str]:
    """Turn a jsonschema error into messages that name the field and say how to fix it."""
    where = _field_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = sorted(set(error.instance) - set(allowed))
        msgs = []
        for key in extras:
            field = f"{where}.{key}" if where != "(conf)" else key
            guess = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            if not guess:  # case-only slips such as "numenvs" score low in difflib
                guess = [a for a in allowed if a.lower() == key.lower()]
            hint = f"did you mean {guess[0]!r}?" if guess else f"allowed keys: {', '.join(allowed)}"
            msgs.append(f"{field}: unknown key; {hint}")
        return msgs
    if error.validator == "required":
        return [f"{where}: {error.message}; add it"]
    if error.validator == "pattern":
        desc = error.schema.get("description", "")
        return [f"{where}: {error.instance!r} is not allowed. {desc}".strip()]
    if error.validator == "enum":
        return [f"{where}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"]
    if error.validator in ("minimum", "maximum"):
        bounds = error.schema
        return [f"{where}: {error.instance} is out of range; use {bounds.get('minimum')}..{bounds.get('maximum')}"]
    return [f"{where}: {error.message}"]


def _semantic_problems(conf: Mapping[str, Any]) -> list[str]:
    """Checks JSON Schema cannot express: cross-field rules per mode."""
    tc = conf.get("trainingConfig", {})
    problems = []
    mode = tc.get("mode")
    if mode == "evaluate" and not (tc.get("checkpointPath") or tc.get("policyS3Uri")
                                   or conf.get("inputS3AssetFilePath")):
        problems.append("trainingConfig.checkpointPath: evaluate needs a checkpoint; set checkpointPath, "
                        "policyS3Uri, or inputS3AssetFilePath holding checkpoints to discover")
    if mode == "play" and not (tc.get("policyPath") or tc.get("checkpointPath") or tc.get("policyS3Uri")):
        problems.append("trainingConfig.policyPath: play needs a policy; set policyPath")
    if mode != "train" and tc.get("resumeCheckpoint"):
        problems.append(f"trainingConfig.resumeCheckpoint: only used in train mode (mode is {mode!r}); remove it")
    needs_asset = [k for k in ("checkpointPath", "resumeCheckpoint", "policyPath")
                   if tc.get(k) and "://" not in tc[k]]
    if needs_asset and not conf.get("inputS3AssetFilePath"):
        problems.extend(f"trainingConfig.{k}: a relative path needs inputS3AssetFilePath (the asset it is relative "
                        "to); set it or give an s3:// URI" for k in needs_asset)
    return problems


def validate_conf(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a conf and return it normalized (unwrapped, defaults filled).

    :param raw: the DAG run's conf, bare or in the seed's workflow wrapper.
    :return: the normalized conf.
    :raises ConfigValidationError: listing every problem at once.
    """
    import jsonschema  # light, but only needed when validating

    schema = load_schema()
    conf = apply_defaults(unwrap(raw))
    validator = jsonschema.Draft202012Validator(schema)
    problems = [msg for err in sorted(validator.iter_errors(conf), key=lambda e: list(e.absolute_path))
                for msg in _describe(err, schema)]
    if not problems:
        problems = _semantic_problems(conf)
    if problems:
        raise ConfigValidationError(problems)
    if conf["trainingConfig"].get("seed") is None:  # the guide's default: drawn once, then recorded
        conf["trainingConfig"]["seed"] = secrets.randbelow(2**31)
    return conf


def apply_deployment(conf: Mapping[str, Any], *, default_output_uri: str, max_nodes: int) -> dict[str, Any]:
    """Fill and check what depends on the deployment, not on the conf alone.

    :param conf: a conf ``validate_conf`` returned.
    :param default_output_uri: where outputs go when the conf has no ``outputS3Path`` ("" if none is set).
    :param max_nodes: the most nodes the compute backend runs one job on (the local backend: 1).
    :return: the conf with ``outputS3Path`` filled.
    :raises ConfigValidationError: naming the field and the fix.
    """
    out = copy.deepcopy(dict(conf))
    problems = []
    if not out.get("outputS3Path"):
        if default_output_uri:
            out["outputS3Path"] = default_output_uri
        else:
            problems.append("outputS3Path: not set, and this deployment has no default output location; set "
                            "outputS3Path (s3://bucket/prefix/) or the Variable isaaclab_default_output_uri")
    nodes = out.get("computeConfig", {}).get("numNodes", 1)
    if nodes > max_nodes:
        problems.append(f"computeConfig.numNodes: {nodes} nodes, but this deployment's compute backend runs a job "
                        f"on at most {max_nodes} (the local backend runs one node); set numNodes to {max_nodes} "
                        "or run it on the AWS Batch backend")
    if problems:
        raise ConfigValidationError(problems)
    return out


def job_uuid(dag_id: str, run_id: str) -> str:
    """Return the run's job UUID: stable for a DAG run, so retries and re-runs write to the same paths."""
    return str(uuid.uuid5(JOB_UUID_NAMESPACE, f"{dag_id}/{run_id}"))


def dag_params() -> dict[str, Any]:
    """Build the DAG's trigger-form Params from the schema, so the form and the validator never disagree.

    Each top-level field becomes a Param with its sub-schema (bounds, enums, patterns), so the API server
    refuses an out-of-range conf with HTTP 400 before a run exists. All are nullable because a conf may
    instead come wrapped in ``parameters``; ``validate_config`` then checks the whole.
    """
    from airflow.sdk import Param

    schema = load_schema()
    params: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        sub = {k: v for k, v in prop.items() if k not in ("description", "default", "examples")}
        sub = _strip_custom_keywords(sub)
        sub["type"] = [sub["type"], "null"]
        params[name] = Param(None, description=prop.get("description"), **sub)
    params["workflowName"] = Param(None, type=["string", "null"], enum=[DAG_ID, None],
                                   description="Only with the seed's wrapper form.")
    params["parameters"] = Param(None, type=["object", "null"],
                                 description="The seed's wrapper form: the whole conf inside 'parameters'.")
    return params


def _strip_custom_keywords(node: Any) -> Any:
    """Drop ``x-*`` keywords, which the trigger form does not understand."""
    if isinstance(node, dict):
        return {k: _strip_custom_keywords(v) for k, v in node.items() if not k.startswith("x-")}
    if isinstance(node, list):
        return [_strip_custom_keywords(v) for v in node]
    return node
