"""What VAMS sends a pipeline, built field by field from VAMS's own source (awslabs/visual-asset-management-system,
read 2026-12-06), for the bridge's tests. Each builder cites the file it follows."""

from __future__ import annotations

import json
from typing import Any

EXECUTION_ID = "3f0c9a52e1b44d0c8f9b7e2a61d0c4aa"  # VAMS uses the Step Functions execution name (a GUID)
PIPELINE_EXECUTION_ID = "p-7d1e3b"
EVENT_PREFIX = f"vams.prod.execution.{EXECUTION_ID}.pipeline.{PIPELINE_EXECUTION_ID}"
BUS_ARN = "arn:aws:events:us-east-1:123456789012:event-bus/vams-prod-orchestration"


def input_prefix(execution_id: str = EXECUTION_ID) -> str:
    """Where VAMS writes a step's manifest and config.json.

    backend/backend/common/workflows/workflowAslBuilder.py: ``pipelines/workflowExecutionInputs/{execution}/
    pipeline{N}/{manifest.json|config.json}`` in ``workflowExecutionS3InputOutputBucket``.
    """
    return f"pipelines/workflowExecutionInputs/{execution_id}/pipeline1/"


def output_prefix(kind: str, execution_id: str = EXECUTION_ID, job: str = "isaaclabtraining-a1b2") -> str:
    """A step's output prefix: backend/backend/common/s3PathPatterns.py (PIPELINES_PREFIX, PIPELINE_OUTPUT_PREFIX,
    PIPELINE_OUTPUT_{FILES,PREVIEWS,METADATA,RESULTS}_PREFIX): ``pipelines/{pipeline}/{job}/output/{exec}/{kind}/``."""
    return f"pipelines/isaac-lab-training/{job}/output/{execution_id}/{kind}/"


def task_body(bucket: str, token: str | None, *, config: bool = True, user: str = "alice") -> dict[str, Any]:
    """The Step Functions task body of a VAMS 2.6 workflow step, resolved.

    backend/backend/common/workflows/stepfunctions_builder.py, ``TaskStateBuilder.build_payload``: the body holds
    workflowDatabaseId, workflowId, workflowExecutionId, workflowExecutionS3InputOutputBucket, executingUserName,
    executingRequestContext, then inputManifestS3Location / inputConfigurationS3Location when the path context
    supplies them; ``apply_callback`` adds ``TaskToken`` (``$$.Task.Token``) for ``waitForCallback: Enabled``.
    No inputS3AssetFilePath / outputS3AssetFilesPath any more.
    """
    body: dict[str, Any] = {
        "workflowDatabaseId": "GLOBAL",
        "workflowId": "isaac-lab-training",
        "workflowExecutionId": EXECUTION_ID,
        "workflowExecutionS3InputOutputBucket": bucket,
        "executingUserName": user,
        "executingRequestContext": {"http": {"method": "POST", "path": "/workflows/execute"}, "requestId": "r-1"},
        "inputManifestS3Location": f"s3://{bucket}/{input_prefix()}manifest.json",
    }
    if config:
        body["inputConfigurationS3Location"] = f"s3://{bucket}/{input_prefix()}config.json"
    if token:
        body["TaskToken"] = token
    return body


def input_file(bucket: str, asset_id: str, relative: str, database_id: str = "robotics",
               version: str = "v1") -> dict[str, Any]:
    """One manifest input-file entry.

    backend/backend/common/workflows/executionRecords.py ``build_manifest_entry`` and the envelope documented in
    backendPipelines/multi/rapidPipeline/lambda/manifestHelper.py: relativePath (leading slash; ``/`` is the whole
    asset), databaseId, assetId, assetRootS3Key (bucket-relative, trailing slash), auxPreviewPrefix, bucket, key,
    versionId (empty for a folder or whole-asset selection).
    """
    root = f"{asset_id}/"
    whole = relative == "/"
    return {"relativePath": relative, "databaseId": database_id, "assetId": asset_id, "assetRootS3Key": root,
            "auxPreviewPrefix": f"{database_id}/{asset_id}{relative}/preview".replace("//", "/"),
            "bucket": bucket, "key": root if whole else root + relative.lstrip("/"),
            "versionId": "" if whole or relative.endswith("/") else version}


def manifest(input_files: list[dict[str, Any]], output_bucket: str, *, aux_bucket: str = "vams-aux",
             system_config: bool = True) -> dict[str, Any]:
    """The per-step manifest envelope.

    backendPipelines/multi/rapidPipeline/lambda/manifestHelper.py (module docstring) and
    backend/backend/common/workflows/executionRecords.py ``build_manifest_envelope``: schemaVersion, inputFiles,
    inputMetadataS3Location, outputs {bucket + bucket-relative files/previews/metadata/results}, outputTarget,
    auxBucket, auxTempPrefix, auxPreviewPipelineSuffix, systemConfig {orchestrationBusArn,
    orchestrationEventPrefix}. ``outputs.bucket`` is the run I/O bucket, which need not be the asset's.
    """
    first = input_files[0] if input_files else {}
    env: dict[str, Any] = {
        "schemaVersion": 1,
        "inputFiles": input_files,
        "inputMetadataS3Location": f"s3://{output_bucket}/pipelines/workflowExecutionInputs/{EXECUTION_ID}/"
                                   "metadata.json",
        "outputs": {"bucket": output_bucket, **{k: output_prefix(k) for k in ("files", "previews", "metadata",
                                                                             "results")}},
        "outputTarget": {"locationType": "asset", "assetId": first.get("assetId", ""),
                         "databaseId": first.get("databaseId", ""), "fileBaseExecutionPathExtension": "/"},
        "auxBucket": aux_bucket,
        "auxTempPrefix": f"pipelines/isaac-lab-training/{EXECUTION_ID}/",
        "auxPreviewPipelineSuffix": "",
    }
    if system_config:
        env["systemConfig"] = {"orchestrationBusArn": BUS_ARN, "orchestrationEventPrefix": EVENT_PREFIX}
    return env


def configuration(**training: Any) -> bytes:
    """The run configuration file: the user's ``inputParameters`` as typed, raw JSON with no VAMS envelope.

    backendPipelines/multi/rapidPipeline/lambda/manifestHelper.py ``fetch_input_configuration``; the shape is the
    configBody of VAMS's own Isaac Lab templates
    (backendPipelines/simulation/isaacLabTraining/vamsSchema/training/templates/isaaclab-training-cartpole.json).
    """
    return json.dumps({"trainingConfig": training, "computeConfig": {"numNodes": 1}}).encode()


def legacy_body(token: str | None, asset: str, output: str, **extra: Any) -> dict[str, Any]:
    """The body before VAMS 2.6 (still what a direct call sends).

    backendPipelines/simulation/isaacLabTraining/lambda/vamsExecuteIsaacLabPipeline.py (VAMS 2.5): TaskToken,
    inputS3AssetFilePath, outputS3AssetFilesPath, outputS3AssetPreviewPath, outputS3AssetMetadataPath,
    inputOutputS3AssetAuxiliaryFilesPath, inputParameters (a JSON string), inputMetadata, executingUserName,
    executingRequestContext.
    """
    body: dict[str, Any] = {"inputS3AssetFilePath": asset, "outputS3AssetFilesPath": output,
                            "outputS3AssetPreviewPath": output.rstrip("/") + "-preview/",
                            "outputS3AssetMetadataPath": output.rstrip("/") + "-metadata/",
                            "inputOutputS3AssetAuxiliaryFilesPath": "s3://vams-aux/x/", "inputMetadata": "",
                            "executingUserName": "bob", "executingRequestContext": {}, **extra}
    if token:
        body["TaskToken"] = token
    return body
