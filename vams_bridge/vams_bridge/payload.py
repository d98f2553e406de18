"""VAMS's pipeline payload → the DAG run's conf, with VAMS's config precedence.

Two contracts (``manifest.resolve``): VAMS 2.6+ sends ``inputManifestS3Location`` (input files, output prefixes,
orchestration bus) and ``inputConfigurationS3Location`` (the run configuration as typed); older VAMS and direct
calls send the paths in the body (``inputS3AssetFilePath``, ``outputS3AssetFilesPath``, ...). The manifest wins
where it says something; the body fields are the fallback.

Precedence of the configuration (highest first), each layer a conf in the DAG's shape (``trainingConfig``,
``computeConfig``, ...) or in the seed's wrapper ``{"workflowName": ..., "parameters": {...}}``:

1. the run configuration: the JSON file at ``inputConfigurationS3Location``, over ``inputParameters`` (an object
   or a JSON string; VAMS before 2.6 sent it inline);
2. a ``.json`` config in the asset: when the input names a ``.json`` file, it is read as the config and its
   folder becomes the asset;
3. the pipeline's defaults (the Lambda's ``DEFAULT_CONF``); the DAG fills the schema's own defaults last.

``null`` and blank strings fall through to the next layer, as in VAMS. The output location comes from VAMS
(``outputs.files`` of the manifest, or ``outputS3AssetFilesPath``): VAMS ingests from there, so it always wins.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from vams_bridge.manifest import ManifestError, Resolved, resolve

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


def _read_layer(read_json: Callable[[str], Any], uri: str, field: str) -> dict[str, Any]:
    """One config file as a layer; an unreadable file is an error naming the field, the location and why."""
    try:
        return _layer(read_json(uri), field)
    except BridgeInputError as exc:
        message = str(exc)
        raise BridgeInputError(message if message.startswith(f"{field}:") else f"{field}: {message}") from None


def build_conf(body: Mapping[str, Any], read_json: Callable[[str], Any],
               defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the DAG run's conf from a VAMS payload body (either contract); it never contains the task token.

    :param body: the decoded payload body.
    :param read_json: reads a JSON document from an ``s3://`` URI (the manifest, the configuration file, the
        asset config); raises :class:`BridgeInputError` naming the location and the reason.
    :param defaults: the pipeline's defaults (lowest precedence).
    :raises BridgeInputError: naming the missing or malformed field.
    """
    try:
        resolved = resolve(body, read_json)
    except ManifestError as exc:
        raise BridgeInputError(str(exc)) from None
    output = resolved.output_files
    if not output:
        raise BridgeInputError("outputS3AssetFilesPath: missing; VAMS sends it with every pipeline call (since "
                               "VAMS 2.6 as outputs.files of the manifest at inputManifestS3Location)")
    asset = resolved.input_uri

    asset_layer: dict[str, Any] = {}
    if asset.lower().endswith(".json"):
        asset_layer = _read_layer(read_json, asset, "inputS3AssetFilePath")
        asset = asset.rsplit("/", 1)[0] + "/"
    run_layer = _layer(body.get("inputParameters"), "inputParameters")
    config_uri = body.get("inputConfigurationS3Location")
    if isinstance(config_uri, str) and config_uri.strip():
        run_layer = merge(run_layer, _read_layer(read_json, config_uri.strip(), "inputConfigurationS3Location"))

    conf = merge(merge(dict(defaults or {}), asset_layer), run_layer)
    for key in TOKEN_KEYS:  # a config file must not smuggle a token into the visible conf
        conf.pop(key, None)
    if asset:
        conf["inputS3AssetFilePath"] = asset
    conf["outputS3Path"] = output
    tc = conf.get("trainingConfig")
    if resolved.checkpoint_uri and isinstance(tc, dict) and tc.get("mode", "train") != "train" and not any(
            tc.get(k) for k in ("checkpointPath", "policyS3Uri", "policyPath")):
        tc["policyS3Uri"] = resolved.checkpoint_uri  # the checkpoint the user selected in VAMS
    conf["vams"] = vams_block(body, resolved)
    return conf


def vams_block(body: Mapping[str, Any], resolved: Resolved) -> dict[str, Any]:
    """The conf's ``vams`` object: the callback flag, who ran it, VAMS's ids and where its other outputs go."""
    vams: dict[str, Any] = {"callback": task_token(body) is not None}
    user = body.get("executingUserName")
    if isinstance(user, str) and user.strip():
        vams["executingUserName"] = user.strip()[:256]
    vams.update({k: v[:256] for k, v in resolved.ids.items()})
    if resolved.outputs:
        vams["outputs"] = dict(resolved.outputs)
    if resolved.orchestration:
        vams["orchestration"] = dict(resolved.orchestration)
    return vams


def run_note(conf: Mapping[str, Any]) -> str:
    """The DAG run's note: who ran it on which asset, and VAMS's ids, so either side finds the other."""
    vams = conf.get("vams") if isinstance(conf.get("vams"), Mapping) else {}
    note = f"VAMS run for {vams.get('executingUserName') or 'unknown user'}: {conf.get('inputS3AssetFilePath', '')}"
    ids = [f"{k} {vams[k]}" for k in ("workflowExecutionId", "workflowId", "workflowDatabaseId", "databaseId",
                                      "assetId", "pipelineExecutionId") if vams.get(k)]
    return note + (" (VAMS " + ", ".join(ids) + ")" if ids else "")


def trigger_body(run_id: str, conf: Mapping[str, Any], note: str | None = None) -> dict[str, Any]:
    """Return the body of ``POST /dags/{dag_id}/dagRuns`` (Airflow 3 requires ``logical_date``, null allowed)."""
    body: dict[str, Any] = {"logical_date": None, "dag_run_id": run_id, "conf": dict(conf)}
    if note:
        body["note"] = note
    return body
