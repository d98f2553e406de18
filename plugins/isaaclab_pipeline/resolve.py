"""Resolve step: find the env package and the checkpoint in the asset, and assemble the JobSpec."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from isaaclab_pipeline import storage
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".whl")
CHECKPOINT_SUFFIXES = (".pt", ".pth")


class ResolveError(ValueError):
    """The asset does not hold what the conf asks for; the message says what was found and the fix."""


def is_package(uri: str) -> bool:
    """Return True if ``uri`` names an env package archive."""
    return uri.lower().endswith(PACKAGE_SUFFIXES)


def asset_root(asset_uri: str, objects: list[storage.StoredObject]) -> str:
    """Return the folder relative paths are resolved against: the asset itself if a prefix, else its parent."""
    if len(objects) == 1 and objects[0].uri.rstrip("/") == asset_uri.rstrip("/"):
        return asset_uri.rsplit("/", 1)[0]
    return asset_uri.rstrip("/")


def find_env_package(asset_uri: str, objects: list[storage.StoredObject]) -> str | None:
    """Return the env package at ``asset_uri``: the file it names, or the one package under the prefix.

    :raises ResolveError: if the prefix holds several packages (which one to install would be a guess).
    """
    packages = [o.uri for o in objects if is_package(o.uri)]
    if len(packages) > 1:
        raise ResolveError(f"inputS3AssetFilePath: {asset_uri} holds {len(packages)} env packages "
                           f"({', '.join(packages)}); point inputS3AssetFilePath at one of them")
    return packages[0] if packages else None


def _iteration(uri: str) -> int:
    """Trailing number of a checkpoint name (``model_1500.pt`` → 1500; none → -1)."""
    match = re.search(r"(\d+)(?=\.[^.]+$)", PurePosixPath(uri).name)
    return int(match.group(1)) if match else -1


def discover_checkpoint(objects: list[storage.StoredObject]) -> str | None:
    """Pick the checkpoint to evaluate when none is named: newest run folder, then highest iteration.

    Folders are compared by their newest file's modification time; within the folder the highest
    trailing number wins, so ``model_1500.pt`` beats ``model_999.pt`` (a string sort would not).
    """
    ckpts = [o for o in objects if o.uri.lower().endswith(CHECKPOINT_SUFFIXES)]
    if not ckpts:
        return None
    folders: dict[str, list[storage.StoredObject]] = {}
    for obj in ckpts:
        folders.setdefault(obj.uri.rsplit("/", 1)[0], []).append(obj)
    newest = max(folders.values(), key=lambda objs: max(o.mtime for o in objs))
    return max(newest, key=lambda o: (_iteration(o.uri), o.mtime)).uri


def _relative_or_uri(value: str | None, root: str | None) -> str | None:
    if not value:
        return None
    if "://" in value:
        return value
    assert root is not None  # validate_config requires inputS3AssetFilePath for relative paths
    return storage.join(root, value)


def build_job_spec(conf: Mapping[str, Any], job_id: str, settings: PipelineSettings) -> JobSpec:
    """Resolve the conf against the asset and the deployment settings into a JobSpec.

    :param conf: the normalized conf from ``validate_config``.
    :param job_id: the run's job UUID.
    :param settings: deployment settings (staging location, device, overrides).
    :raises ResolveError: if the package or checkpoint cannot be found.
    """
    tc = conf["trainingConfig"]
    asset_uri = conf.get("inputS3AssetFilePath")
    package = checkpoint = root = None
    if asset_uri:
        store = storage.for_uri(asset_uri, settings.aws_conn_id)
        objects = store.list(asset_uri)
        if not objects:
            raise ResolveError(f"inputS3AssetFilePath: nothing found at {asset_uri}; check the path and that "
                               "the package was uploaded")
        root = asset_root(asset_uri, objects)
        package = find_env_package(asset_uri, objects)
        log.info("Asset %s: %d file(s); env package: %s", asset_uri, len(objects), package or "none")
        if tc["mode"] != "train":
            checkpoint = (_relative_or_uri(tc.get("checkpointPath") or tc.get("policyPath"), root)
                          or tc.get("policyS3Uri") or discover_checkpoint(objects))
    else:
        checkpoint = tc.get("policyS3Uri") or tc.get("policyPath")
    if tc["mode"] != "train" and not checkpoint:
        raise ResolveError(f"trainingConfig.checkpointPath: no checkpoint (.pt/.pth) found under {asset_uri}; "
                           "set checkpointPath or policyS3Uri")
    if checkpoint and not storage.for_uri(checkpoint, settings.aws_conn_id).exists(checkpoint):
        raise ResolveError(f"trainingConfig.checkpointPath: {checkpoint} does not exist")
    resume = _relative_or_uri(tc.get("resumeCheckpoint"), root)
    if resume and not storage.for_uri(resume, settings.aws_conn_id).exists(resume):
        raise ResolveError(f"trainingConfig.resumeCheckpoint: {resume} does not exist")
    return JobSpec(
        job_id=job_id,
        mode=tc["mode"],
        task=tc["task"],
        rl_library=tc["rlLibrary"],
        seed=tc["seed"],
        num_envs=tc["numEnvs"],
        max_iterations=tc["maxIterations"],
        num_episodes=tc["numEpisodes"],
        record_video=tc["recordVideo"],
        env_package_uri=package,
        checkpoint_uri=checkpoint,
        resume_checkpoint_uri=resume,
        staging_uri=storage.join(settings.staging_uri, job_id),
        device=settings.device,
        num_nodes=conf["computeConfig"]["numNodes"],
        overrides=list(settings.overrides),
    )
