"""VAMS's pipeline payload → the DAG run's conf, with VAMS's config precedence.

Precedence (highest first), each layer a conf in the DAG's shape (``trainingConfig``, ``computeConfig``, ...)
or in the seed's wrapper ``{"workflowName": ..., "parameters": {...}}``:

1. the run configuration: ``inputParameters`` (an object or a JSON string), over the JSON file at
   ``inputConfigurationS3Location``;
2. a ``.json`` config in the asset: when ``inputS3AssetFilePath`` names a ``.json`` file, it is read as the
   config and its folder becomes the asset;
3. the pipeline's defaults (the Lambda's ``DEFAULT_CONF``); the DAG fills the schema's own defaults last.

``null`` and blank strings fall through to the next layer, as in VAMS. The paths come from the payload itself:
``outputS3AssetFilesPath`` is where VAMS ingests outputs, so it always wins.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

TOKEN_KEYS = ("TaskToken", "taskToken")


class BridgeInputError(ValueError):
    """The VAMS payload or one of its config files cannot be turned into a conf; the message names the field."""


def parse_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """Return the payload's body, decoding it when VAMS sent it as a JSON string.

    :param event: the Lambda event, ``{"body": {...}}`` or ``{"body": "<json>"}``; a bare body is accepted too.
    :raises BridgeInputError: if the body is not a JSON object.
    """
    body = event.get("body", event) if isinstance(event, Mapping) else event
    return dict(_json_object(body, "body"))


def _json_object(value: Any, field: str) -> Mapping[str, Any]:
    """Decode ``value`` (an object or its JSON text) into an object; the error names ``field``."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BridgeInputError(f"{field}: not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, Mapping):
        raise BridgeInputError(f"{field}: expected a JSON object, got {type(value).__name__}")
    return value


def task_token(body: Mapping[str, Any]) -> str | None:
    """Return the Step Functions task token of the payload, if VAMS waits for a callback."""
    for key in TOKEN_KEYS:
        if isinstance(body.get(key), str) and body[key].strip():
            return body[key].strip()
    return None


def dag_run_id(token: str | None) -> str:
    """Return the DAG run id: derived from the token, so a retried Lambda finds its run instead of a second one.

    A truncated SHA-256 cannot be turned back into the token; without a token the id is random.
    """
    if token:
        return "vams__" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"vams__{datetime.now(UTC):%Y%m%dT%H%M%S}_{uuid.uuid4().hex[:8]}"


def _layer(value: Any, field: str) -> dict[str, Any]:
    """Decode one config layer (object or JSON string; blank → empty) and unwrap the seed's wrapper."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    value = _json_object(value, field)
    if "parameters" in value and isinstance(value["parameters"], Mapping):
        value = value["parameters"]
    return dict(value)


def merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``high`` over ``low`` key by key (objects recursively); null and blank values fall through."""
    out = dict(low)
    for key, value in high.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = merge({}, value)
        else:
            out[key] = value
    return out


def build_conf(body: Mapping[str, Any], read_json: Callable[[str], Any],
               defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the DAG run's conf from a VAMS payload body; it never contains the task token.

    :param body: the decoded payload body.
    :param read_json: reads a JSON document from an ``s3://`` URI (the asset config, the configuration file).
    :param defaults: the pipeline's defaults (lowest precedence).
    :raises BridgeInputError: naming the missing or malformed field.
    """
    output = body.get("outputS3AssetFilesPath")
    if not isinstance(output, str) or not output.strip():
        raise BridgeInputError("outputS3AssetFilesPath: missing; VAMS sends it with every pipeline call")
    asset = body.get("inputS3AssetFilePath")
    asset = asset.strip() if isinstance(asset, str) else ""

    asset_layer: dict[str, Any] = {}
    if asset.lower().endswith(".json"):
        asset_layer = _layer(read_json(asset), "inputS3AssetFilePath")
        asset = asset.rsplit("/", 1)[0] + "/"
    run_layer: dict[str, Any] = {}
    config_uri = body.get("inputConfigurationS3Location")
    if isinstance(config_uri, str) and config_uri.strip():
        run_layer = _layer(read_json(config_uri.strip()), "inputConfigurationS3Location")
    run_layer = merge(run_layer, _layer(body.get("inputParameters"), "inputParameters"))

    conf = merge(merge(dict(defaults or {}), asset_layer), run_layer)
    for key in TOKEN_KEYS:  # a config file must not smuggle a token into the visible conf
        conf.pop(key, None)
    if asset:
        conf["inputS3AssetFilePath"] = asset
    conf["outputS3Path"] = output.strip()
    vams: dict[str, Any] = {"callback": task_token(body) is not None}
    user = body.get("executingUserName")
    if isinstance(user, str) and user.strip():
        vams["executingUserName"] = user.strip()[:256]
    conf["vams"] = vams
    return conf


def trigger_body(run_id: str, conf: Mapping[str, Any], note: str | None = None) -> dict[str, Any]:
    """Return the body of ``POST /dags/{dag_id}/dagRuns`` (Airflow 3 requires ``logical_date``, null allowed)."""
    body: dict[str, Any] = {"logical_date": None, "dag_run_id": run_id, "conf": dict(conf)}
    if note:
        body["note"] = note
    return body
