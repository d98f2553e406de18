"""Checkpoint sources in the MLflow registry: ``models:/<name>/<version|alias>`` and ``runs:/<run id>/<path>``.

``checkpointPath``, ``policyS3Uri`` and ``resumeCheckpoint`` may name one. The resolve step (before any GPU time)
looks it up through ``MlflowClient``, downloads the checkpoint artifact and copies it under the deployment's staging
location, where the runner fetches it like any checkpoint URI:

- ``models:/<name>/<version>`` or ``models:/<name>/<alias>``: the version's checkpoint (its tag
  ``isaaclab.checkpoint``, set by ``tracking.registry``) → ``{staging}/registry/models/<name>/<version>/<file>``;
- ``runs:/<run id>/<path>``: that artifact file of the run → ``{staging}/registry/runs/<run id>/<path>``.

What was resolved (model, version, source run, the version's job) goes into ``training-config.json``'s
``resolved.registry``, and an evaluation of a registered version logs its scores against it.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_pipeline import storage
from isaaclab_pipeline.compat import AirflowFailException

log = logging.getLogger(__name__)

MODEL_URI = re.compile(r"^models:/(?P<name>[^/]+)/(?P<ref>[^/]+)$")
RUN_URI = re.compile(r"^runs:/(?P<run>[^/]+)/(?P<path>.+)$")
FIELDS = ("checkpointPath", "policyS3Uri", "resumeCheckpoint")
STAGING_FOLDER = "registry"  # under the staging root, beside the jobs' folders: shared, written once per version


class ModelUriError(AirflowFailException, ValueError):
    """A registry URI that does not resolve (no tracking server, no such model, version, alias or artifact); the
    message names the field and the fix. Deterministic: the step fails without retries."""


def is_registry_uri(value: Any) -> bool:
    """Return True if ``value`` is a ``models:/`` or ``runs:/`` URI."""
    return isinstance(value, str) and bool(MODEL_URI.match(value) or RUN_URI.match(value))


def resolve_fields(tc: Mapping[str, Any], tracking_uri: str, staging_root: str,
                   aws_conn_id: str | None = "aws_default") -> tuple[dict[str, Any], dict[str, Any]]:
    """The training config with its registry URIs replaced by the staged checkpoints' URIs, and what was resolved.

    A ``checkpointPath`` naming the registry moves to ``policyS3Uri`` (a staged URI is not relative to the asset).

    :return: (training config, ``{field: {"source", "uri", "registeredModel", "registeredVersion", ...}}``).
    :raises ModelUriError: naming the field, the URI and the fix.
    """
    out, facts = dict(tc), {}
    for field in FIELDS:
        value = tc.get(field)
        if not is_registry_uri(value):
            continue
        staged, found = resolve(value, field, tracking_uri, staging_root, aws_conn_id)
        facts[field] = {"source": value, "uri": staged, **found}
        if field == "checkpointPath":
            out["checkpointPath"], out["policyS3Uri"] = None, staged
        else:
            out[field] = staged
    return out, facts


def resolve(value: str, field: str, tracking_uri: str, staging_root: str,
            aws_conn_id: str | None = "aws_default") -> tuple[str, dict[str, Any]]:
    """Stage the checkpoint ``value`` names; return its staged URI and the registry facts.

    :raises ModelUriError: as :func:`resolve_fields`.
    """
    if not tracking_uri:
        raise ModelUriError(f"trainingConfig.{field}: {value} names the MLflow registry, but this deployment has no "
                            "tracking server; an operator sets the Variable isaaclab_mlflow_tracking_uri, or give the "
                            "checkpoint as a URI")
    from isaaclab_pipeline.tracking import mlflow as tracking
    from isaaclab_pipeline.tracking.registry import ARTIFACT_PATH, CHECKPOINT_TAG, JOB_TAG

    client = tracking.client(tracking_uri)
    where = tracking.shown(tracking_uri)
    model = MODEL_URI.match(value)
    if model:
        name, ref = model["name"], model["ref"]
        try:
            version = (client.get_model_version(name, ref) if ref.isdigit()
                       else client.get_model_version_by_alias(name, ref))
        except Exception as exc:
            raise ModelUriError(f"trainingConfig.{field}: {value} is not in the registry at {where} "
                                f"({_short(exc)}); list the versions with MlflowClient().search_model_versions("
                                f"\"name='{name}'\") or the MLflow UI's Models page") from exc
        checkpoint = (version.tags or {}).get(CHECKPOINT_TAG)
        if not checkpoint or not version.run_id:
            raise ModelUriError(f"trainingConfig.{field}: {value} (version {version.version}) names no checkpoint "
                                f"(tag {CHECKPOINT_TAG}): it was not registered by this pipeline; name the checkpoint "
                                "file as runs:/<run id>/<path>")
        run_id, artifact = version.run_id, f"{ARTIFACT_PATH}/{checkpoint}"
        facts = {"registeredModel": name, "registeredVersion": str(version.version), "sourceRunId": run_id,
                 "sourceJobId": (version.tags or {}).get(JOB_TAG)}
        target = storage.join(staging_root, STAGING_FOLDER, "models", name, str(version.version),
                              checkpoint.rsplit("/", 1)[-1])
    else:
        run = RUN_URI.match(value)
        assert run is not None  # is_registry_uri said so
        run_id, artifact = run["run"], run["path"].strip("/")
        facts = {"sourceRunId": run_id}
        target = storage.join(staging_root, STAGING_FOLDER, "runs", run_id, artifact)
    with tempfile.TemporaryDirectory(prefix="isaaclab-model-uri-") as tmp:
        try:
            local = Path(client.download_artifacts(run_id, artifact, tmp))
        except Exception as exc:
            raise ModelUriError(f"trainingConfig.{field}: {value}: artifact {artifact} of run {run_id} not found at "
                                f"{where} ({_short(exc)}); check the run id and the path in its Artifacts tab") from exc
        if not local.is_file():
            raise ModelUriError(f"trainingConfig.{field}: {value} is a folder; name the checkpoint file in it "
                                f"({', '.join(sorted(p.name for p in local.iterdir())[:5])})")
        storage.for_uri(target, aws_conn_id).upload(local, target)
    staged = target if "://" in target else Path(target).resolve().as_uri()
    log.info("trainingConfig.%s: %s resolved to %s (run %s)", field, value, staged, run_id)
    return staged, facts


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}" if str(exc) else type(exc).__name__
