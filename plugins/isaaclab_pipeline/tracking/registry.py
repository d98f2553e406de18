"""The policy registry: each trained policy a version of an MLflow registered model, through ``MlflowClient``.

When the deployment tracks (Variable ``isaaclab_mlflow_tracking_uri``), the publish step logs the run
(``tracking.mlflow.log_trial``) and then registers its exported policy here:

- the run gets an MLflow Model under the artifact path ``policy/``: ``policy.pt`` (TorchScript), ``policy.onnx``,
  the checkpoint it was exported from (``checkpoint/<name>``), ``env-params.txt`` and ``agent-params.txt`` (Isaac
  Lab's env and agent params) and an ``MLmodel`` whose signature is the policy's input and output sizes
  (``exported/policy.json``, written by the runner's export);
- that folder becomes a new version of the registered model named by the conf's ``registry.modelName`` (default:
  the task id), tagged with the lineage: ``isaaclab.jobId``, ``isaaclab.conf`` (the normalized conf, JSON),
  ``isaaclab.envPackageSha256``, ``isaaclab.isaacLabVersion``, ``isaaclab.libraryVersions``, the final metrics
  (``metric.<tag>``), ``isaaclab.checkpoint`` (the checkpoint's path in the version, what ``models:/`` URIs
  resolve to, ``model_uris.py``); ``registry.alias`` moves that alias to it.

A retried publish replaces the version it registered before (same ``isaaclab.jobId``). An evaluation of a
registered version (``checkpointPath: models:/<name>/<version>``) logs its scores against that version: tags
``eval.<score>`` and ``eval.runId`` on the version, and ``isaaclab.registeredModel``/``isaaclab.registeredVersion``
on the evaluation's run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from isaaclab_pipeline import readers, storage
from isaaclab_pipeline.tracking import mlflow as tracking

log = logging.getLogger(__name__)

ARTIFACT_PATH = "policy"  # the version's folder in its run's artifacts
CHECKPOINT_TAG = "isaaclab.checkpoint"  # the checkpoint's path inside ARTIFACT_PATH
JOB_TAG = "isaaclab.jobId"
POLICY_FILES = {"exported/policy.pt": "policy.pt", "exported/policy.onnx": "policy.onnx",
                "env-params.txt": "env-params.txt", "agent-params.txt": "agent-params.txt"}
SIGNATURE = "exported/policy.json"
TAG_LIMIT = 5000  # MLflow's longest model version tag value


def model_name(conf: Mapping[str, Any]) -> str:
    """The registered model's name: ``registry.modelName``, else the task id (characters MLflow URIs split on
    replaced by ``-``)."""
    name = (conf.get("registry") or {}).get("modelName") or str(conf["trainingConfig"]["task"])
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name)


def _signature(path: Path) -> Any:
    """The MLflow signature of ``policy.json`` (float32 tensors, any batch size)."""
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    doc = json.loads(path.read_text())

    def schema(entries: list[Mapping[str, Any]]) -> Any:
        return Schema([TensorSpec(np.dtype("float32"), tuple(e["shape"]), e["name"]) for e in entries])

    return ModelSignature(inputs=schema(doc["inputs"]), outputs=schema(doc["outputs"]))


def _sha256(uri: str | None, aws_conn_id: str | None, folder: Path) -> str | None:
    """The env package's sha256 (None when the run had none or it is gone)."""
    if not uri:
        return None
    try:
        path = storage.for_uri(uri, aws_conn_id).download(uri, folder / "package" / uri.rsplit("/", 1)[-1])
    except Exception as exc:
        log.warning("Registry: env package %s not read for its sha256: %s", uri, exc)
        return None
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read(folder: Path, name: str, fetched: Any) -> dict[str, Any]:
    """A fetched JSON document of the published run, read through ``readers``; {} when it was not fetched."""
    return (readers.read_json((folder / name).read_bytes()) if fetched and name in fetched else None) or {}


def _final_metrics(summary: Mapping[str, Any]) -> dict[str, str]:
    """``metric.<tag>`` = the last value of each headline tag of summary.json, and the best mean reward."""
    out = {}
    headline = ("Train/", "Episode_Reward/", "Reward", "Episode/", "rewards/", "episode_lengths/")
    for tag, stats in (summary.get("tags") or {}).items():
        if isinstance(stats, Mapping) and isinstance(stats.get("last"), int | float) and tag.startswith(headline):
            out[f"metric.{tracking.metric_key(tag)}"] = repr(float(stats["last"]))
    best = summary.get("best_mean_reward") or {}
    if isinstance(best.get("value"), int | float):
        out["metric.best_mean_reward"] = repr(float(best["value"]))
    return dict(sorted(out.items())[:50])


def register_policy(uri: str, run_id: str, *, conf: Mapping[str, Any], job_id: str, out_uri: str,
                    resolved: Mapping[str, Any] | None = None, aws_conn_id: str | None = "aws_default"
                    ) -> dict[str, str] | None:
    """Register the published run's exported policy as a new version; return ``{"name", "version"}``.

    :param uri: the tracking URI.
    :param run_id: the MLflow run ``log_trial`` logged the published outputs to.
    :param conf: the normalized conf (the model's name, the ``isaaclab.conf`` tag).
    :param out_uri: the run's published outputs.
    :param resolved: what resolve found (``envPackageUri`` for the package's sha256).
    :return: None when the run exported no policy (nothing to register; logged).
    """
    client = tracking.client(uri)
    name = model_name(conf)
    with tempfile.TemporaryDirectory(prefix="isaaclab-registry-") as tmp:
        folder = Path(tmp)
        fetched = tracking._download(out_uri, ["manifest.json"], folder, aws_conn_id)
        names = list(readers.manifest_files(_read(folder, "manifest.json", fetched)))
        checkpoint = tracking._newest_checkpoint(names)
        wanted = [n for n in (*POLICY_FILES, SIGNATURE, "job-result.json", "summary.json") if n in names]
        got = tracking._download(out_uri, wanted + ([checkpoint] if checkpoint else []), folder, aws_conn_id)
        if "exported/policy.pt" not in got or checkpoint not in got:
            log.warning("Registry: %s has no exported policy and checkpoint; nothing registered", out_uri)
            return None
        policy, ckpt_rel = _policy_folder(folder, got, checkpoint)
        result = _read(folder, "job-result.json", got)
        summary = _read(folder, "summary.json", got)
        tc = conf["trainingConfig"]
        _log_model(client, run_id, policy, ckpt_rel, folder / SIGNATURE if SIGNATURE in got else None, tc, job_id)
        tags = {JOB_TAG: job_id, CHECKPOINT_TAG: ckpt_rel, "isaaclab.outputUri": out_uri,
                "isaaclab.task": str(tc["task"]), "isaaclab.rlLibrary": str(tc["rlLibrary"]),
                "isaaclab.conf": json.dumps({k: v for k, v in conf.items() if k != "vams"}, sort_keys=True),
                "isaaclab.isaacLabVersion": str(result.get("isaacLabVersion") or ""),
                "isaaclab.libraryVersions": json.dumps(result.get("libraryVersions") or {}, sort_keys=True),
                "isaaclab.iterations": str(result.get("iterations", "")),
                "isaaclab.envPackageSha256": _sha256((resolved or {}).get("envPackageUri"), aws_conn_id, folder) or "",
                **_final_metrics(summary)}
    version = _new_version(client, name, run_id, {k: v[:TAG_LIMIT] for k, v in tags.items()},
                           f"{tc['task']} ({tc['rlLibrary']}), job {job_id}", job_id)
    alias = (conf.get("registry") or {}).get("alias")
    if alias:
        client.set_registered_model_alias(name, alias, version)
    log.info("Registry: %s version %s (run %s) at %s", name, version, run_id, tracking.shown(uri))
    return {"name": name, "version": version}


def _policy_folder(folder: Path, got: list[str], checkpoint: str) -> tuple[Path, str]:
    """Move the downloaded policy files and the checkpoint into ``folder/policy``; return it and the checkpoint's
    path inside it."""
    policy = folder / ARTIFACT_PATH
    policy.mkdir()
    for src, dest in POLICY_FILES.items():
        if src in got:
            (folder / src).rename(policy / dest)
    ckpt_rel = f"checkpoint/{PurePosixPath(checkpoint).name}"
    (policy / "checkpoint").mkdir()
    (folder / checkpoint).rename(policy / ckpt_rel)
    return policy, ckpt_rel


def _log_model(client: Any, run_id: str, policy: Path, ckpt_rel: str, signature: Path | None,
               tc: Mapping[str, Any], job_id: str) -> None:
    """Write the policy folder's ``MLmodel`` (the ``isaaclab`` flavor, the signature) and log the folder to the run
    under ``ARTIFACT_PATH``."""
    from mlflow.models import Model

    model = Model(artifact_path=ARTIFACT_PATH, run_id=run_id,
                  signature=_signature(signature) if signature is not None else None,
                  metadata={"task": str(tc["task"]), "rlLibrary": str(tc["rlLibrary"]), "jobId": job_id})
    files = {"torchscript": "policy.pt", "onnx": "policy.onnx", "env_params": "env-params.txt",
             "agent_params": "agent-params.txt"}
    model.add_flavor("isaaclab", checkpoint=ckpt_rel, rl_library=str(tc["rlLibrary"]),
                     **{k: v for k, v in files.items() if (policy / v).exists()})
    model.save(str(policy / "MLmodel"))
    client.log_artifacts(run_id, str(policy), ARTIFACT_PATH)


def _new_version(client: Any, name: str, run_id: str, tags: Mapping[str, str], description: str,
                 job_id: str) -> str:
    """Create the registered model if missing and a version of it from the run's ``ARTIFACT_PATH``, replacing the
    one an earlier attempt of the same job registered; return the version."""
    try:
        client.create_registered_model(name, description="Isaac Lab policies registered by isaac-lab-training")
    except Exception as exc:  # it exists (or a concurrent trial created it)
        if "RESOURCE_ALREADY_EXISTS" not in str(exc) and "already exists" not in str(exc):
            raise
    for old in client.search_model_versions(f"name='{name}' and tag.`{JOB_TAG}`='{job_id}'"):
        client.delete_model_version(name, old.version)  # a retried publish: one version per job
    version = client.create_model_version(name, source=f"runs:/{run_id}/{ARTIFACT_PATH}", run_id=run_id,
                                          tags=dict(tags), description=description)
    return str(version.version)


def log_evaluation(uri: str, registered: Mapping[str, Any], scores: Mapping[str, Any], run_id: str | None) -> None:
    """Log an evaluation's scores against the version it evaluated (tags ``eval.<score>``, ``eval.runId``) and name
    the version on the evaluation's run.

    :param registered: ``{"registeredModel", "registeredVersion"}`` (what resolve found for ``models:/``).
    :param scores: the evaluation's ``summary.json`` (``episodes``, ``return``/``length``: mean, std, min, max,
        ``successRate``).
    """
    client = tracking.client(uri)
    name, version = registered["registeredModel"], str(registered["registeredVersion"])
    flat = {"episodes": scores.get("episodes"), "successRate": scores.get("successRate")}
    for key in ("return", "length"):
        for stat, value in (scores.get(key) or {}).items():
            flat[f"{key}{stat.title()}"] = value  # returnMean, returnStd, lengthMax, ...
    for key, value in flat.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            client.set_model_version_tag(name, version, f"eval.{key}", repr(value))
    if run_id:
        client.set_model_version_tag(name, version, "eval.runId", run_id)
        client.set_tag(run_id, "isaaclab.registeredModel", name)
        client.set_tag(run_id, "isaaclab.registeredVersion", version)
    log.info("Registry: evaluation scores logged on %s version %s", name, version)


def record(uri: str, run_id: str, *, conf: Mapping[str, Any], job_id: str, out_uri: str,
           resolved: Mapping[str, Any] | None = None, aws_conn_id: str | None = "aws_default") -> dict[str, Any]:
    """The publish step's registry work for a run MLflow logged: a training registers its policy, an evaluation of
    a registered version logs its scores against it.

    :return: ``{"registeredModel", "registeredVersion"}`` of what was registered or evaluated (empty: neither).
    """
    mode = conf["trainingConfig"]["mode"]
    if mode == "train":
        version = register_policy(uri, run_id, conf=conf, job_id=job_id, out_uri=out_uri, resolved=resolved,
                                  aws_conn_id=aws_conn_id)
        return {"registeredModel": version["name"], "registeredVersion": version["version"]} if version else {}
    evaluated = next((f for f in ((resolved or {}).get("registry") or {}).values() if f.get("registeredModel")),
                     None)
    if mode != "evaluate" or evaluated is None:
        return {}
    with tempfile.TemporaryDirectory(prefix="isaaclab-registry-") as tmp:
        got = tracking._download(out_uri, ["summary.json"], Path(tmp), aws_conn_id)
        scores = _read(Path(tmp), "summary.json", got)
    log_evaluation(uri, evaluated, scores, run_id)
    return {"registeredModel": evaluated["registeredModel"], "registeredVersion": evaluated["registeredVersion"]}
