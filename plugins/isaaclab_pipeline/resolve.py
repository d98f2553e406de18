"""Resolve step: find the env package and the checkpoint in the asset, and assemble the JobSpec."""

from __future__ import annotations

import difflib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_pipeline import asset_mirror, model_uris, storage
from isaaclab_pipeline.compat import AirflowFailException
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

# .tar.gz covers both a tarred project folder (the seed's `tar -czf`) and an sdist (`python -m build --sdist`)
PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".zip", ".whl")
# written by `python -m isaaclab_tools.cli list-tasks` from the Isaac Lab environment (the image's task list)
KNOWN_TASKS_ENV = "ISAACLAB_KNOWN_TASKS"
KNOWN_TASKS_NAME = "known-tasks.json"
MAX_ASSET_FILES = 20_000  # an asset is a package and some checkpoints, not a disk (a conf naming '/')


class ResolveError(AirflowFailException, ValueError):
    """The asset does not hold what the conf asks for, or the conf reaches where the deployment does not allow;
    the message says what was found and the fix. Deterministic: the step fails without retries."""


def check_uris(conf: Mapping[str, Any], job_id: str, settings: PipelineSettings) -> None:
    """Before anything is read: the deployment's URI policy (config.uri_policy_problems), then the output location
    written and deleted once (a probe), so an unwritable output fails here, not after training.

    :param job_id: the folder under ``outputS3Path`` the run publishes to (a sweep trial: ``<uuid>/trials/<id>``).

    :raises ResolveError: listing every URI the policy refuses, or naming the unwritable output.
    :raises Exception: a transient store error (throttling, 5xx, timeout) as it is: the step retries.
    """
    from isaaclab_pipeline.aws_retry import is_transient
    from isaaclab_pipeline.config import uri_policy_problems

    problems = uri_policy_problems(conf, settings.compute_backend, settings.allowed_uri_prefixes)
    if problems:
        raise ResolveError("the conf names locations this deployment does not allow:\n  - " + "\n  - ".join(problems))
    output = conf.get("outputS3Path")
    if not output:
        return
    target = storage.join(output, job_id)
    try:
        storage.check_writable(target, settings.aws_conn_id)
    except Exception as exc:
        if is_transient(exc):
            raise
        raise ResolveError(f"outputS3Path: {target} is not writable ({type(exc).__name__}: {exc}); fix the location "
                           "or its permissions (the job would train, then fail to publish)") from exc


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


def discover_checkpoint(objects: list[storage.StoredObject], rl_library: str = "rsl_rl",
                        facts: dict[str, Any] | None = None) -> str | None:
    """Pick the checkpoint to evaluate when none is named (``discovery.discover``: only the library's training
    checkpoints, never ``exported/`` or a run's attempt copies; the newest run, then the highest iteration); the
    choice and what was skipped are logged."""
    from isaaclab_pipeline.discovery import discover

    found = discover(objects, rl_library)
    log.info("Checkpoint discovery: %s", found.describe())
    if facts is not None:
        facts["checkpointChoice"] = found.reason
    if found.uri is None and found.found:
        raise ResolveError(f"trainingConfig.checkpointPath: not set, and auto-discovery found no {rl_library} "
                           f"training checkpoint ({found.reason}); found {len(found.found)} file(s), skipped:\n"
                           + found.describe() + "\nset checkpointPath or policyS3Uri")
    return found.uri


def _relative_or_uri(value: str | None, root: str | None, field: str = "checkpointPath") -> str | None:
    """A URI as it is; a path relative to the asset joined to the asset's root.

    :raises ResolveError: for a relative path without an asset to be relative to.
    """
    if not value:
        return None
    if "://" in value:
        return value
    if root is None:
        raise ResolveError(f"trainingConfig.{field}: {value!r} is relative to the asset, but the conf has no "
                           "inputS3AssetFilePath; set inputS3AssetFilePath to the asset holding it (VAMS does), or "
                           "give the checkpoint as an s3:// URI")
    return storage.join(root, value)


def known_tasks_path() -> Path:
    """Where the image's task list is kept: ``$ISAACLAB_KNOWN_TASKS``, else ``{pipeline home}/known-tasks.json``."""
    from isaaclab_pipeline.settings import pipeline_home

    return Path(os.environ.get(KNOWN_TASKS_ENV) or pipeline_home() / KNOWN_TASKS_NAME)


def load_known_tasks(path: Path | None = None) -> tuple[set[str], dict[str, str]] | None:
    """Return (registered ids, 2.x aliases) of the image, or None when no list was saved."""
    path = path or known_tasks_path()
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    return {t for ids in doc.get("sources", {}).values() for t in ids}, dict(doc.get("aliases", {}))


def check_task(task: str, has_package: bool, known: tuple[set[str], dict[str, str]] | None) -> None:
    """Fail before any GPU time when the image's task list is known and ``task`` is not in it.

    A task of an env package is only known once the package is installed (in the container), so a conf with a
    package is not checked here; the runner checks it right after installing.

    :raises ResolveError: naming the closest registered ids and the fix.
    """
    if known is None or has_package:
        return
    ids, aliases = known
    if task in ids or task in aliases:
        return
    close = difflib.get_close_matches(task, sorted(ids), n=5, cutoff=0.5) or ["none"]
    raise ResolveError(f"trainingConfig.task: {task!r} is not registered in the Isaac Lab image and no env package "
                       f"was given (closest: {', '.join(close)}); fix the id, or point inputS3AssetFilePath at the "
                       "env package that registers it (`python -m isaaclab_tools.cli list-tasks` lists them)")


def build_job_spec(conf: Mapping[str, Any], job_id: str, settings: PipelineSettings,
                   output_key: str | None = None, facts: dict[str, Any] | None = None) -> JobSpec:
    """Resolve the conf against the asset and the deployment settings into a JobSpec.

    :param conf: the normalized conf from ``validate_config``.
    :param job_id: the run's job UUID.
    :param settings: deployment settings (staging location, device, overrides).
    :param output_key: where under ``outputS3Path`` the run publishes (default: ``job_id``).
    :param facts: filled with how the checkpoint was chosen (``checkpointChoice``), for the published configs.
    :raises ResolveError: if the package or checkpoint cannot be found, or a URI is not allowed or not writable.
    """
    check_uris(conf, output_key or job_id, settings)
    tc = conf["trainingConfig"]
    if any(model_uris.is_registry_uri(tc.get(f)) for f in model_uris.FIELDS):  # models:/, runs:/ (the registry)
        tc, registry = model_uris.resolve_fields(tc, settings.mlflow_tracking_uri, settings.staging_uri,
                                                 settings.aws_conn_id)
        if facts is not None:
            facts["registry"] = registry
    asset_uri = conf.get("inputS3AssetFilePath")
    package, checkpoint, root = _asset_inputs(asset_uri, tc, settings, facts)
    check_task(tc["task"], package is not None, load_known_tasks())
    if settings.asset_mirror_uri and package is None:  # a built-in task: its assets must be in the mirror
        problem = asset_mirror.check_task_assets(settings.asset_mirror_uri, tc["task"], settings.aws_conn_id)
        if problem:
            raise ResolveError(f"trainingConfig.task: {problem}")
    if tc["mode"] != "train" and not checkpoint:
        raise ResolveError(f"trainingConfig.checkpointPath: no checkpoint (.pt/.pth) found under {asset_uri}; "
                           "set checkpointPath or policyS3Uri")
    _check_exists("checkpointPath", checkpoint, settings)
    resume = _relative_or_uri(tc.get("resumeCheckpoint"), root, "resumeCheckpoint")
    _check_exists("resumeCheckpoint", resume, settings)
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
        init=tc.get("init") if resume and tc.get("init") in ("resume", "warm-start") else None,
        staging_uri=storage.join(settings.staging_uri, job_id),
        device=settings.device,
        num_nodes=conf["computeConfig"]["numNodes"],
        overrides=job_overrides(tc, settings),
        cache_uri=settings.cache_uri or None,
        asset_mirror_uri=settings.asset_mirror_uri or None,
        install_timeout_s=settings.install_timeout_s,
    )


def _asset_inputs(asset_uri: str | None, tc: Mapping[str, Any], settings: PipelineSettings,
                  facts: dict[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """The env package, the checkpoint (evaluate and play) and the asset's root folder, from the asset's listing
    (or, without an asset, the checkpoint the conf names).

    :raises ResolveError: if the asset is empty or holds too many files.
    """
    if not asset_uri:
        checkpoint = None
        if tc["mode"] != "train":
            checkpoint = (_relative_or_uri(tc.get("checkpointPath"), None) or tc.get("policyS3Uri")
                          or _relative_or_uri(tc.get("policyPath"), None, "policyPath"))
        return None, checkpoint, None
    store = storage.for_uri(asset_uri, settings.aws_conn_id)
    try:
        objects = store.list(asset_uri, limit=MAX_ASSET_FILES)
    except storage.TooManyObjectsError as exc:
        raise ResolveError(f"inputS3AssetFilePath: {asset_uri} holds more than {MAX_ASSET_FILES} files; point it "
                           "at the env package, or at the folder holding it and its checkpoints") from exc
    if not objects:
        raise ResolveError(f"inputS3AssetFilePath: nothing found at {asset_uri}; check the path and that "
                           "the package was uploaded")
    root = asset_root(asset_uri, objects)
    package = find_env_package(asset_uri, objects)
    log.info("Asset %s: %d file(s); env package: %s", asset_uri, len(objects), package or "none")
    checkpoint = None
    if tc["mode"] != "train":
        checkpoint = (_relative_or_uri(tc.get("checkpointPath") or tc.get("policyPath"), root)
                      or tc.get("policyS3Uri") or discover_checkpoint(objects, tc["rlLibrary"], facts))
    return package, checkpoint, root


def _check_exists(field: str, uri: str | None, settings: PipelineSettings) -> None:
    """:raises ResolveError: if ``uri`` (the conf's ``trainingConfig.<field>``, resolved) is set but missing."""
    if uri and not storage.for_uri(uri, settings.aws_conn_id).exists(uri):
        raise ResolveError(f"trainingConfig.{field}: {uri} does not exist")


def job_overrides(tc: Mapping[str, Any], settings: PipelineSettings) -> list[str]:
    """The deployment's overrides, then the conf's (canonical since validate_config), so the conf's win: the runner
    passes them last, after its own, on every backend and library."""
    return list(settings.overrides) + list(tc.get("overrides") or [])


def build_trial_specs(conf: Mapping[str, Any], job_id: str, settings: PipelineSettings) -> list[dict[str, Any]]:
    """One JobSpec per trial of the conf (``sweep.expand``): the asset is resolved and the output probed once.

    :param conf: the normalized conf from ``validate_config``.
    :param job_id: the run's job UUID (a sweep's UUID).
    :return: ``[{"job_spec": <JobSpec JSON>, "trial": <trial, with outputUri>}]``, the mapped trials' kwargs.
    :raises ResolveError: as :func:`build_job_spec`.
    """
    import dataclasses

    from isaaclab_pipeline.sweep import expand

    trials = expand(conf, job_id)
    out = []
    first: JobSpec | None = None
    facts: dict[str, Any] = {}
    for trial in trials:
        key = trial.get("outputKey") or (job_id if trial["trialId"] is None else f"{job_id}/trials/{trial['trialId']}")
        tc = trial["conf"]["trainingConfig"]
        if first is None:
            spec = first = build_job_spec(trial["conf"], trial["jobId"], settings, output_key=key, facts=facts)
        else:
            spec = dataclasses.replace(first, job_id=trial["jobId"], seed=tc["seed"],
                                       overrides=job_overrides(tc, settings),
                                       staging_uri=storage.join(settings.staging_uri, trial["jobId"]))
        trial = {**trial, "outputUri": storage.join(conf["outputS3Path"], key), "resolved": facts}
        out.append({"job_spec": spec.to_dict(), "trial": trial})
    if len(out) > 1:
        log.info("Sweep %s: %d trials, %d job(s) at once at most", job_id, len(out), settings.max_concurrent_jobs)
    return out
