"""VAMS 2.6's pipeline contract: the body points at a manifest and a configuration file instead of carrying paths.

Since VAMS 2.6 the Step Functions task body (``TaskStateBuilder.build_payload`` in VAMS's
``backend/backend/common/workflows/stepfunctions_builder.py``) carries only ``workflowDatabaseId``, ``workflowId``,
``workflowExecutionId``, ``workflowExecutionS3InputOutputBucket``, ``executingUserName``,
``executingRequestContext``, ``inputManifestS3Location``, ``inputConfigurationS3Location`` and ``TaskToken``.
The manifest (the envelope VAMS's vendored ``manifestHelper.py`` reads) holds the input files, where outputs go
and the orchestration bus::

    {"schemaVersion": 1,
     "inputFiles": [{"bucket", "key", "relativePath", "assetRootS3Key", "databaseId", "assetId", "versionId",
                     "auxPreviewPrefix"}],
     "inputMetadataS3Location": "s3://...",
     "outputs": {"bucket", "files", "previews", "metadata", "results"},      # bucket-relative prefixes
     "auxBucket", "auxTempPrefix",
     "systemConfig": {"orchestrationBusArn", "orchestrationEventPrefix"}}

:func:`resolve` reads it the way VAMS's ``manifestHelper.resolve_inputs`` does: the manifest first, each of its
values overriding the legacy body field only when present, and the legacy body (older VAMS, direct calls) when
the body names no manifest. A manifest that is named but cannot be read is an error, never a fallback: it is the
only carrier of the output location.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".whl")  # the DAG's resolve step accepts the same
CHECKPOINT_SUFFIXES = (".pt", ".pth")
ID_FIELDS = ("workflowDatabaseId", "workflowId", "workflowExecutionId")


class ManifestError(ValueError):
    """The manifest (or what it selects) cannot be turned into a run; the message names the field."""


@dataclass
class Resolved:
    """What one VAMS call asks for, whichever contract it came in.

    :param manifest_used: the inputs came from a manifest (VAMS 2.6+).
    :param input_uri: ``inputS3AssetFilePath`` for the DAG: a package, a folder (the asset root) or a ``.json``
        config in the asset; empty for a run with no input (a built-in task).
    :param output_files: where VAMS ingests the asset's new files from (the conf's ``outputS3Path``).
    :param outputs: the other output prefixes as ``s3://`` URIs (``previews``, ``metadata``, ``results``).
    :param checkpoint_uri: a checkpoint selected among the input files (used when the conf names none).
    :param ids: VAMS's identifiers of the execution and its asset.
    :param orchestration: ``busArn`` and ``eventPrefix`` for registering the job with VAMS.
    """

    manifest_used: bool = False
    input_uri: str = ""
    output_files: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    checkpoint_uri: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    orchestration: dict[str, str] = field(default_factory=dict)


def s3_uri(bucket: Any, key: Any) -> str:
    """``s3://bucket/key`` from a bucket and a bucket-relative key (manifestHelper's ``_join_s3``); "" without one."""
    if not isinstance(bucket, str) or not bucket.strip():
        return ""
    return f"s3://{bucket.strip()}/{(key or '') if isinstance(key, str) else ''}"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def pipeline_execution_id(event_prefix: str) -> str:
    """The pipeline execution id at the end of ``<source>.execution.<id>.pipeline.<pipelineExecutionId>``."""
    marker = ".pipeline."
    return event_prefix[event_prefix.rfind(marker) + len(marker):] if marker in event_prefix else ""


def _is(name: str, suffixes: Sequence[str]) -> bool:
    return name.lower().endswith(tuple(suffixes))


def select_input(files: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """Pick the DAG's asset input and a selected checkpoint from the manifest's input files.

    - the asset or a folder (a key ending in ``/``; VAMS's whole-asset selection is relativePath ``/``): that
      prefix, where the resolve step finds the one env package and the checkpoints;
    - files: the one env package among them; with none, a ``.json`` config selected alone (its folder is the
      asset), else the asset root of the first file (``assetRootS3Key``), where the package is looked for;
    - a checkpoint (``.pt``/``.pth``) among the files is returned apart, for an evaluation that names none.

    :return: (input URI, checkpoint URI), each possibly "".
    :raises ManifestError: several packages, several checkpoints, or an entry without bucket and key.
    """
    uris: list[tuple[str, Mapping[str, Any]]] = []
    for i, entry in enumerate(files):
        key = _text(entry.get("key")) if isinstance(entry, Mapping) else ""
        if isinstance(entry, Mapping) and not key and _text(entry.get("relativePath")) in ("", "/"):
            key = _text(entry.get("assetRootS3Key"))  # the whole asset: its root prefix
        if not isinstance(entry, Mapping) or not _text(entry.get("bucket")) or not key:
            raise ManifestError(f"inputFiles[{i}]: needs a bucket and a key")
        if _text(entry.get("relativePath")) == "/" and not key.endswith("/"):
            key += "/"
        uris.append((s3_uri(entry["bucket"], key), entry))
    if not uris:
        return "", ""
    folders = [u for u, _ in uris if u.endswith("/")]
    if folders:
        if len(uris) > 1:
            raise ManifestError(f"inputFiles: select the asset, one folder or files, not both ({_names(uris)})")
        return folders[0], ""
    packages = [u for u, _ in uris if _is(u, PACKAGE_SUFFIXES)]
    checkpoints = [u for u, _ in uris if _is(u, CHECKPOINT_SUFFIXES)]
    if len(packages) > 1:
        raise ManifestError(f"inputFiles: {len(packages)} env packages selected ({', '.join(packages)}); "
                            "select one (or the asset, which holds one)")
    if len(checkpoints) > 1:
        raise ManifestError(f"inputFiles: {len(checkpoints)} checkpoints selected ({', '.join(checkpoints)}); "
                            "select one, or name it in trainingConfig.checkpointPath")
    checkpoint = checkpoints[0] if checkpoints else ""
    if packages:
        return packages[0], checkpoint
    configs = [u for u, _ in uris if u.lower().endswith(".json")]
    if len(configs) == 1 and len(uris) == 1:
        return configs[0], ""
    first = uris[0][1]
    root = _text(first.get("assetRootS3Key"))
    if not root:
        raise ManifestError(f"inputFiles: no env package among {_names(uris)} and no assetRootS3Key to look in")
    return s3_uri(first["bucket"], root if root.endswith("/") else root + "/"), checkpoint


def _names(uris: Sequence[tuple[str, Any]]) -> str:
    return ", ".join(u for u, _ in uris)


def resolve(body: Mapping[str, Any], read_json: Callable[[str], Any]) -> Resolved:
    """Resolve a VAMS call's inputs and outputs: the manifest first, the legacy body fields as the fallback.

    :param body: the decoded payload body.
    :param read_json: reads an ``s3://`` JSON document; raises ``ValueError`` naming the location and reason.
    :raises ManifestError: the manifest cannot be read or selects nothing usable.
    """
    out = Resolved(input_uri=_text(body.get("inputS3AssetFilePath")),
                   output_files=_text(body.get("outputS3AssetFilesPath")))
    for name, legacy in (("previews", "outputS3AssetPreviewPath"), ("metadata", "outputS3AssetMetadataPath"),
                         ("results", "outputS3AssetResultsPath")):
        if _text(body.get(legacy)):
            out.outputs[name] = _text(body[legacy])
    out.ids = {k: _text(body.get(k)) for k in ID_FIELDS if _text(body.get(k))}
    location = _text(body.get("inputManifestS3Location"))
    if not location:
        return out
    if not location.startswith("s3://") or "/" not in location[len("s3://"):]:
        raise ManifestError(f"inputManifestS3Location: {location!r} is not an s3://bucket/key location")
    try:
        manifest = read_json(location)
    except ValueError as exc:
        raise ManifestError(f"inputManifestS3Location: {exc}") from None
    if not isinstance(manifest, Mapping):
        raise ManifestError(f"inputManifestS3Location: {location} is not a JSON object")
    out.manifest_used = True

    files = manifest.get("inputFiles") or []
    if not isinstance(files, list):
        raise ManifestError(f"inputManifestS3Location: {location}: inputFiles is not a list")
    selected, out.checkpoint_uri = select_input(files)
    out.input_uri = selected or out.input_uri
    if files and isinstance(files[0], Mapping):
        for key in ("databaseId", "assetId"):
            if _text(files[0].get(key)):
                out.ids[key] = _text(files[0][key])
    target = manifest.get("outputTarget") if isinstance(manifest.get("outputTarget"), Mapping) else {}
    for key in ("databaseId", "assetId"):  # an arity-"none" run writes to its output target
        if key not in out.ids and _text(target.get(key)):
            out.ids[key] = _text(target[key])

    outputs = manifest.get("outputs") if isinstance(manifest.get("outputs"), Mapping) else {}
    bucket = outputs.get("bucket")
    if _text(outputs.get("files")) and s3_uri(bucket, ""):
        out.output_files = s3_uri(bucket, _text(outputs["files"]))
    for name in ("previews", "metadata", "results"):
        if _text(outputs.get(name)) and s3_uri(bucket, ""):
            out.outputs[name] = s3_uri(bucket, _text(outputs[name]))

    system = manifest.get("systemConfig") if isinstance(manifest.get("systemConfig"), Mapping) else {}
    bus, prefix = _text(system.get("orchestrationBusArn")), _text(system.get("orchestrationEventPrefix"))
    if bus and prefix:
        out.orchestration = {"busArn": bus, "eventPrefix": prefix}
        if pipeline_execution_id(prefix):
            out.ids["pipelineExecutionId"] = pipeline_execution_id(prefix)
    return out
