"""The conf contract: mode-dependent defaults, all-errors validation, the deployment defaults (the schemas are read
through ``schemas``).

The JSON Schema in ``include/schemas/training-config.schema.json`` is the single source of truth: the trigger
form (Params), this validator and the docs are all derived from it.
"""

from __future__ import annotations

import copy
import difflib
import logging
import re
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

from isaaclab_pipeline.schemas import load_schema

log = logging.getLogger(__name__)

DAG_ID = "isaac-lab-training"
# Namespace of job UUIDs: uuid5(namespace, "<dag_id>/<run_id>") is stable across task retries and re-runs.
JOB_UUID_NAMESPACE = uuid.UUID("6f1f3f5e-2a57-4a4e-9d0e-7c1b8a0e5a11")


class ConfigValidationError(ValueError):
    """The conf breaks the contract; ``problems`` lists every problem, each naming the field and the fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid conf ({} problem{}):\n  - {}".format(
            len(problems), "" if len(problems) == 1 else "s", "\n  - ".join(problems)))


def unwrap(conf: Mapping[str, Any]) -> dict[str, Any]:
    """Accept the seed's workflow wrapper ``{"workflowName": ..., "parameters": {...}}`` as well as a bare conf.

    The trigger form also sends the unused Params as nulls; those are dropped here.
    """
    if not isinstance(conf, Mapping):
        raise ConfigValidationError([f"(conf): must be a JSON object, got {_json_type(conf)} {_show(conf)}"])
    conf = {k: v for k, v in conf.items() if v is not None}
    if "parameters" in conf or "workflowName" in conf:
        name = conf.get("workflowName", DAG_ID)
        if name != DAG_ID:
            raise ConfigValidationError([f"workflowName: is {_show(name)}; this pipeline is {DAG_ID!r}"])
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
        mode = mode if isinstance(mode, str) else None  # the validator reports a mode that is not a string
        for key, prop in props.items():
            if key in values:
                continue
            if "default" in prop:
                values[key] = prop["default"]
            elif mode in prop.get("x-defaultByMode", {}):
                values[key] = prop["x-defaultByMode"][mode]
    return out


def _field_path(error: Any) -> str:
    return ".".join(_key(p) for p in error.absolute_path) or "(conf)"


def _key(key: Any) -> str:
    """A key as it reads in a field path: as is when a plain name (letters, digits, '_', '-'), else quoted (Python
    repr, clipped), so a path always reads unambiguously up to its ': '."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text) else repr(text[:64])


def _show(value: Any, limit: int = 80) -> str:
    """``repr(value)`` clipped to ``limit`` characters (junk confs can be huge)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), ((int, float), "number"), (str, "string"), (list, "array"),
                       (Mapping, "object")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _describe(error: Any, schema: Mapping[str, Any]) -> list[str]:
    """Turn a jsonschema error into messages that name the field and say how to fix it."""
    where = _field_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extras = sorted(set(error.instance) - set(allowed))
        msgs = []
        for key in extras:
            field = f"{where}.{_key(key)}" if where != "(conf)" else _key(key)
            guess = difflib.get_close_matches(key[:128], allowed, n=1, cutoff=0.6)
            if not guess:  # case-only slips such as "numenvs" score low in difflib
                guess = [a for a in allowed if a.lower() == key.lower()]
            hint = f"did you mean {guess[0]!r}?" if guess else f"allowed keys: {', '.join(allowed)}"
            msgs.append(f"{field}: unknown key; {hint}")
        return msgs
    if error.validator == "required":
        return [f"{where}: {error.message}; add it"]
    if error.validator == "pattern":
        desc = error.schema.get("description", "")
        return [f"{where}: {_show(error.instance)} is not allowed. {desc}".strip()]
    if error.validator == "enum":
        return [f"{where}: {_show(error.instance)} is not one of {', '.join(map(str, error.validator_value))}"]
    if error.validator in ("minimum", "maximum"):
        bounds = error.schema
        return [f"{where}: {_show(error.instance)} is out of range; use "
                f"{bounds.get('minimum')}..{bounds.get('maximum')}"]
    if error.validator == "type":
        kind = _json_type(error.instance)
        return [f"{where}: {_show(error.instance)} is {'an' if kind[0] in 'aeiou' else 'a'} {kind}; it must be "
                f"{' or '.join(_types(error.validator_value))}"]
    return [f"{where}: {_show(error.message, 200)}"]


def _types(value: Any) -> list[str]:
    kinds = value if isinstance(value, list) else [value]
    return [{"integer": "an integer", "object": "an object", "array": "an array"}.get(k, f"a {k}") for k in kinds]


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
    init = tc.get("init")
    if init and mode != "train":
        problems.append(f"trainingConfig.init: only used in train mode (mode is {mode!r}); remove it")
    elif init in ("warm-start", "resume") and not tc.get("resumeCheckpoint"):
        problems.append(f"trainingConfig.init: {init} needs resumeCheckpoint (the checkpoint to start from: a URI, "
                        "a path in the asset, models:/<name>/<version> or runs:/<run id>/<path>)")
    elif init == "from-scratch" and tc.get("resumeCheckpoint"):
        problems.append("trainingConfig.init: from-scratch trains new weights, but resumeCheckpoint is set; remove "
                        "one of them (init warm-start keeps the checkpoint's weights only)")
    # a relative checkpointPath without inputS3AssetFilePath is accepted here, as the user guide writes it (VAMS
    # adds the asset); resolve_inputs refuses it when no asset came, before any GPU time
    return problems


# Checks JSON Schema cannot make (or makes differently in Python): control characters, integers written as
# floats, and the shape of URIs.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
URI_FIELDS = ("inputS3AssetFilePath", "outputS3Path", "trainingConfig.policyS3Uri", "trainingConfig.checkpointPath",
              "trainingConfig.policyPath", "trainingConfig.resumeCheckpoint")


def _walk_strings(node: Any, path: str) -> list[tuple[str, str, bool]]:
    """Every string of a JSON value with its field path: (path, text, is_key)."""
    out: list[tuple[str, str, bool]] = []
    stack = [(node, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            out.append((where, value, False))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                sub = f"{where}.{_key(k)}" if where != "(conf)" else _key(k)
                if isinstance(k, str) and _CONTROL.search(k):
                    out.append((sub, k, True))
                stack.append((v, sub))
        elif isinstance(value, list):
            stack.extend((v, f"{where}.{i}") for i, v in enumerate(value))
    return out


def _control_problems(conf: Mapping[str, Any]) -> dict[str, str]:
    """Any string (value or key) holding a control character: a newline in a task id or a path is never meant."""
    problems = {}
    for where, text, is_key in _walk_strings(conf, "(conf)"):
        if _CONTROL.search(text):
            what = "key" if is_key else "value"
            problems[where] = (f"{where}: the {what} {_show(text)} holds a control character (newline, tab, NUL...); "
                               "remove it")
    return problems


def _strict_type_problems(conf: Mapping[str, Any], schema: Mapping[str, Any], where: str = "(conf)") -> dict[str, str]:
    """Integer fields given as floats (``64.0``): JSON Schema calls them integers, Isaac Lab's CLI does not."""
    problems: dict[str, str] = {}
    props = schema.get("properties", {})
    for key, value in conf.items():
        prop = props.get(key) if isinstance(key, str) else None
        if not isinstance(prop, Mapping):
            continue
        field = f"{where}.{key}" if where != "(conf)" else key
        kinds = prop.get("type") if isinstance(prop.get("type"), list) else [prop.get("type")]
        if isinstance(value, float) and "integer" in kinds and "number" not in kinds:
            fix = f"write {int(value)}" if value.is_integer() else "use a whole number"
            problems[field] = f"{field}: {_show(value)} is not an integer (a JSON number with a decimal point); {fix}"
        elif isinstance(value, Mapping) and "object" in kinds:
            problems.update(_strict_type_problems(value, prop, field))
    return problems


def uri_problems(field: str, uri: str) -> list[str]:
    """The shape of one URI or path field: an ``s3://`` bucket that is a bucket, ``file://`` on this host, absolute
    local paths, and no ``.``/``..`` parts anywhere."""
    problems = []
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://"):].partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            problems.append(f"{field}: {_show(uri)} has no valid bucket name (3-63 lowercase letters, digits, '.', "
                            "'-'); write s3://<bucket>/<prefix>")
        parts = key.split("/")
        if any(p in (".", "..") for p in parts) or "" in parts[:-1]:
            problems.append(f"{field}: {_show(uri)} has an empty, '.' or '..' part; write the key plainly")
    elif uri.startswith("file://"):
        host, _, path = uri[len("file://"):].partition("/")
        if host not in ("", "localhost"):
            problems.append(f"{field}: {_show(uri)} names host {host!r}; a file:// URI is on this machine "
                            "(file:///absolute/path)")
        if ".." in path.split("/"):
            problems.append(f"{field}: {_show(uri)} has a '..' part; write the path plainly")
    elif uri.startswith("/") and ".." in uri.split("/"):
        problems.append(f"{field}: {_show(uri)} has a '..' part; write the path plainly")
    return problems


def _get(conf: Mapping[str, Any], field: str) -> Any:
    node: Any = conf
    for part in field.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def uri_policy_problems(conf: Mapping[str, Any], backend: str,
                        allowed_prefixes: tuple[str, ...] | list[str]) -> list[str]:
    """What the deployment allows: on AWS Batch only ``s3://`` URIs, local paths only on the local backend; and
    when the deployment lists allowed prefixes (Variable ``isaaclab_allowed_uri_prefixes``), every ``s3://`` URI
    under one of them. On Batch the list is required.

    :param conf: a validated conf.
    :param backend: ``local`` or ``batch``.
    :param allowed_prefixes: ``s3://bucket/prefix/`` entries (empty: none configured).
    """
    problems = []
    prefixes = [p if p.endswith("/") else p + "/" for p in allowed_prefixes]
    for field in URI_FIELDS:
        value = _get(conf, field)
        if not isinstance(value, str) or not value:
            continue
        if "://" not in value and field.startswith("trainingConfig.") and not value.startswith("/"):
            continue  # relative to the asset, which is checked itself
        if not value.startswith("s3://"):
            if backend != "local":
                problems.append(f"{field}: {_show(value)} is a local path; this deployment runs jobs on AWS Batch, "
                                "where only s3:// URIs are allowed")
            continue
        if not prefixes and backend == "local":
            continue
        if not prefixes:
            problems.append(f"{field}: {_show(value)} cannot be checked: this deployment allows no S3 location yet; "
                            "an operator sets the Variable isaaclab_allowed_uri_prefixes (docs/security.md)")
        elif not any((value if value.endswith("/") else value + "/").startswith(p) for p in prefixes):
            problems.append(f"{field}: {_show(value)} is outside the locations this deployment allows "
                            f"({', '.join(prefixes)}); use one of them or ask an operator to add yours to the "
                            "Variable isaaclab_allowed_uri_prefixes")
    return problems


def validate_conf(raw: Any) -> dict[str, Any]:
    """Validate a conf and return it normalized (unwrapped, defaults filled).

    Whatever JSON it is given (an object, a list, a string, null, nested junk), it returns a conf or raises
    :class:`ConfigValidationError`; nothing else.

    :param raw: the DAG run's conf, bare or in the seed's workflow wrapper.
    :return: the normalized conf.
    :raises ConfigValidationError: listing every problem at once, each naming its field.
    """
    try:
        return _validate(raw)
    except ConfigValidationError:
        raise
    except RecursionError:
        raise ConfigValidationError(["(conf): nested too deeply to be a conf"]) from None
    except Exception as exc:  # a bug of ours must still read as a refusal, not a crash of the step
        log.exception("validating the conf failed unexpectedly")
        raise ConfigValidationError([f"(conf): could not be validated ({type(exc).__name__}: {_show(str(exc))}); "
                                     "check its structure against docs/configuration.md"]) from exc


def _validate(raw: Any) -> dict[str, Any]:
    import jsonschema  # light, but only needed when validating

    from isaaclab_pipeline import overrides, sweep

    schema = load_schema()
    conf = apply_defaults(unwrap(raw))
    tc = conf.get("trainingConfig")
    override_problems, canonical = ({}, []) if not isinstance(tc, dict) or "overrides" not in tc else (
        overrides.problems(tc["overrides"], "trainingConfig.overrides"))
    early = {**_strict_type_problems(conf, schema), **override_problems, **sweep.problems(conf, _key),
             **_control_problems(conf)}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(conf), key=lambda e: [str(p) for p in e.absolute_path])
    problems = list(early.values())
    problems += [msg for err in errors if _field_path(err) not in early for msg in _describe(err, schema)]
    if not problems:
        problems = [p for field in URI_FIELDS if isinstance(v := _get(conf, field), str)
                    for p in uri_problems(field, v)]
    if not problems:
        problems = _semantic_problems(conf)
    if problems:
        raise ConfigValidationError(problems)
    if "overrides" in conf["trainingConfig"]:
        conf["trainingConfig"]["overrides"] = canonical  # the text the job gets and training-config.json records
    if conf["trainingConfig"].get("seed") is None and not (conf.get("sweep") or {}).get("seeds"):
        conf["trainingConfig"]["seed"] = secrets.randbelow(2**31)  # the guide's default: drawn once, then recorded
    return conf


def apply_deployment(conf: Mapping[str, Any], *, default_output_uri: str, max_nodes: int,
                     max_trials: int | None = None) -> dict[str, Any]:
    """Fill and check what depends on the deployment, not on the conf alone.

    :param conf: a conf ``validate_conf`` returned.
    :param default_output_uri: where outputs go when the conf has no ``outputS3Path`` ("" if none is set).
    :param max_nodes: the most nodes the compute backend runs one job on (the local backend: 1).
    :param max_trials: the most trials one sweep may run (Variable ``isaaclab_max_trials``; None: no cap).
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
    if max_trials is not None and isinstance(out.get("sweep"), Mapping):
        from isaaclab_pipeline import sweep

        trials = sweep.count(out)
        if trials > max_trials:
            seeds = len(out["sweep"].get("seeds") or [None])
            problems.append(f"sweep: {trials} trials ({trials // seeds} setting(s) x {seeds} seed(s)), but this "
                            f"deployment runs at most {max_trials} per sweep (Variable isaaclab_max_trials); drop "
                            "seeds or grid values, or split the sweep")
    if problems:
        raise ConfigValidationError(problems)
    return out


def job_uuid(dag_id: str, run_id: str) -> str:
    """Return the run's job UUID: stable for a DAG run, so retries and re-runs write to the same paths."""
    return str(uuid.uuid5(JOB_UUID_NAMESPACE, f"{dag_id}/{run_id}"))
