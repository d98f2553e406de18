"""The runs view's data: each DAG run of the pipeline with its steps, live progress, result, cost and links.

Two sources, read by the api-server (locally and on MWAA alike):

- Airflow's metadata DB: the DAG runs, their task instances and the steps' XComs (the normalized conf from
  ``validate_config``, the job handles of ``submit_job``, the link values of ``wait_for_job``, the output URIs of
  ``publish_outputs``); the job steps may be mapped (one map index per sweep trial), so a run holds trials;
- the stores (``storage``): ``progress.json`` in the job's staging folder while it runs, and the published
  ``summary.json``, ``cost.json``, ``metrics.csv`` and ``manifest.json`` once it is done.

The rooms of ``ui/``: ``queries.py`` (the metadata DB), ``artifacts.py`` (the stores, cached; the reward curve),
``run_links.py`` (links), this module (a run as the page shows it), ``app.py`` (the FastAPI app), ``plugin.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from isaaclab_pipeline import staging_layout
from isaaclab_pipeline.backends.base import JobHandle
from isaaclab_pipeline.readers import manifest_files
from isaaclab_pipeline.ui.artifacts import Artifacts, result_of
from isaaclab_pipeline.ui.queries import LINK_KEYS, REPORT_STEP, STEPS, TRIAL_STEPS, RunRecord
from isaaclab_pipeline.ui.run_links import airflow_run_link, console_link, s3_console_link

ACTIVE = ("queued", "running")


def describe(record: RunRecord, artifacts: Artifacts, now: float | None = None,
             file_url: Callable[[str, int, str], str] | None = None) -> dict[str, Any]:
    """One run as the page shows it (JSON-able).

    :param file_url: (run id, trial index, published file name) → a URL serving that file.
    """
    from isaaclab_pipeline.cost import total as total_cost

    now = time.time() if now is None else now
    validated = record.xcoms.get(("validate_config", -1, "return_value")) or {}
    conf = validated.get("conf") if isinstance(validated, Mapping) else None
    problems: list[str] = []
    if not isinstance(conf, Mapping):
        conf = _conf_as_sent(record.conf, problems)
    tc = conf.get("trainingConfig") or {} if isinstance(conf, Mapping) else {}
    trials = [_trial(record, index, artifacts, file_url) for index in _trial_indexes(record)]
    report = record.xcoms.get((REPORT_STEP, -1, "return_value"))
    started, ended = record.start_date, record.end_date
    duration = ((ended.timestamp() if ended else now) - started.timestamp()) if started else None
    costs = [t["cost"] for t in trials if t.get("cost")]
    return {
        "runId": record.run_id, "state": record.state, "note": record.note, "triggeredBy": record.triggered_by,
        "startDate": started.isoformat() if started else None, "endDate": ended.isoformat() if ended else None,
        "queuedAt": record.run_after.isoformat() if record.run_after else None,
        "durationS": round(duration, 1) if duration is not None else None,
        "jobId": validated.get("jobId") if isinstance(validated, Mapping) else None,
        "mode": tc.get("mode"), "task": tc.get("task"), "rlLibrary": tc.get("rlLibrary"),
        "numEnvs": tc.get("numEnvs"), "numNodes": (conf.get("computeConfig") or {}).get("numNodes")
        if isinstance(conf, Mapping) else None,
        "sweep": bool(isinstance(conf, Mapping) and conf.get("sweep")),
        "steps": {step: _state(record, step) for step in STEPS},
        "trials": trials,
        "cost": total_cost(costs),
        "report": report if isinstance(report, Mapping) else None,
        "links": {"airflow": airflow_run_link(record.run_id)},
        "problems": problems,
    }


def _conf_as_sent(raw: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Before validate_config has run (or when it failed): the conf as sent, in the nested shape, unvalidated."""
    from isaaclab_pipeline.config import unwrap
    from isaaclab_pipeline.form import to_nested

    try:
        return unwrap(to_nested(raw))
    except Exception as exc:
        problems.append(f"conf: {str(exc)[:300]}")
        return {}


def _trial_indexes(record: RunRecord) -> list[int]:
    indexes = {mi for (task, mi) in record.tis if task in TRIAL_STEPS}
    indexes |= {mi for (task, mi, _) in record.xcoms if task in TRIAL_STEPS}
    mapped = sorted(i for i in indexes if i >= 0)
    return mapped or ([-1] if -1 in indexes else [])


def _state(record: RunRecord, task_id: str, map_index: int | None = None) -> str | None:
    """A step's state; a mapped step's states summarised (``running 2/6``) when no index is given."""
    if map_index is not None:
        ti = record.tis.get((task_id, map_index)) or record.tis.get((task_id, -1))
        return ti[0] if ti else None
    states = [ti[0] for (task, mi), ti in record.tis.items() if task == task_id and mi >= 0]
    if not states:
        ti = record.tis.get((task_id, -1))
        return ti[0] if ti else None
    if len(set(states)) == 1:
        return states[0]
    for worst in ("failed", "upstream_failed", "running", "deferred", "up_for_retry", "queued", "scheduled"):
        if worst in states:
            return f"{worst} ({states.count(worst)}/{len(states)})"
    return f"{states[0]} (mixed)"


def _trial(record: RunRecord, index: int, artifacts: Artifacts,
           file_url: Callable[[str, int, str], str] | None) -> dict[str, Any]:
    handle = record.xcoms.get(("submit_job", index, "return_value"))
    published = record.xcoms.get(("publish_outputs", index, "return_value"))
    spec, facts = _spec_of(record, index)
    handle = handle if isinstance(handle, Mapping) else None
    job = JobHandle.from_dict(handle) if handle else None
    staging_uri = (job.staging_uri if job else "") or (spec or {}).get("stagingUri")
    out_uri = published.get("outputUri") if isinstance(published, Mapping) else None
    waited = _state(record, "wait_for_job", index)
    # a cleared run's steps run again and rewrite the same files: their end and try number version the caches
    job_version = step_version(record, "wait_for_job", index)
    out_version = step_version(record, "publish_outputs", index)
    job_over = waited in ("success", "failed", "upstream_failed", "skipped", "removed")
    run_over = record.state not in ACTIVE
    problems: list[str] = []
    trial: dict[str, Any] = {
        "index": index, "trialId": (facts or {}).get("trialId"), "setting": (facts or {}).get("settingLabel"),
        "jobId": (job.job_id if job else "") or (spec or {}).get("jobId"),
        "seed": (spec or {}).get("seed"),
        "steps": {step: _state(record, step, index) for step in TRIAL_STEPS},
        "backend": job.backend if job else None, "externalId": job.external_id if job else None,
        "progress": None, "curve": [], "result": None, "cost": None, "timings": None, "gpu": None,
        "problems": problems,
        "links": {}, "outputUri": out_uri,
    }
    if staging_uri and not out_uri:  # live progress (and the final progress of a job that ended unpublished)
        _add_staged(trial, artifacts, staging_uri, final=job_over or run_over, failed=waited == "failed",
                    version=job_version)
    if out_uri:
        _add_published(trial, artifacts, record, index, file_url, out_version)
        trial["links"]["outputs"] = s3_console_link(out_uri, job.details.get("regionName") if job else None)
    if trial["cost"] is None and handle:
        trial["cost"] = _cost_summary(artifacts.cost(handle, final=job_over or run_over, version=job_version))
    for key, name in zip(LINK_KEYS, ("batchJob", "cloudWatch"), strict=True):
        value = record.xcoms.get(("wait_for_job", index, key)) or record.xcoms.get(("submit_job", index, key))
        link = console_link(key, value)
        if link:
            trial["links"][name] = link
    return trial


def _add_staged(trial: dict[str, Any], artifacts: Artifacts, staging_uri: str, final: bool, failed: bool,
                version: str) -> None:
    """A trial's progress and curve from its staging folder; a failed job's own cause (result.json's error)."""
    from isaaclab_pipeline import storage

    try:
        progress = artifacts.read_json(storage.join(staging_uri, staging_layout.PROGRESS), final=final, version=version)
    except Exception as exc:
        trial["problems"].append(f"progress.json not read: {type(exc).__name__}: {str(exc)[:200]}")
        progress = None
    trial["progress"] = progress
    trial["curve"] = artifacts.sample(trial["jobId"] or staging_uri, progress)
    if failed:  # not only the step's state
        try:
            result = artifacts.read_json(storage.join(staging_uri, staging_layout.RESULT), final=True, version=version)
            trial["error"] = (result or {}).get("error") if isinstance(result, Mapping) else None
        except Exception as exc:
            trial["problems"].append(f"result.json not read: {type(exc).__name__}: {str(exc)[:200]}")


def _add_published(trial: dict[str, Any], artifacts: Artifacts, record: RunRecord, index: int,
                   file_url: Callable[[str, int, str], str] | None, version: str) -> None:
    """A published trial's result, timings, GPU figures, curve, cost and files."""
    from isaaclab_pipeline import storage

    out_uri = trial["outputUri"]
    try:
        summary = artifacts.read_json(storage.join(out_uri, "summary.json"), True, version)
        trial["result"] = result_of(summary)
        if isinstance(summary, Mapping):  # the job's timings and GPU figures (the convert step's)
            trial["timings"], trial["gpu"] = summary.get("timings"), summary.get("gpu")
        trial["curve"] = artifacts.curve_of_metrics(storage.join(out_uri, "metrics.csv"), version)
        trial["cost"] = _cost_summary(artifacts.read_json(storage.join(out_uri, "cost.json"), True, version))
        manifest = artifacts.read_json(storage.join(out_uri, "manifest.json"), True, version)
        trial["files"] = _files(record.run_id, index, list(manifest_files(manifest)), file_url)
    except Exception as exc:
        trial["problems"].append(f"outputs not read: {type(exc).__name__}: {str(exc)[:200]}")


def step_version(record: RunRecord, task_id: str, index: int) -> str:
    """When a step (of a trial) last ended and its try number: changes when a cleared run runs it again."""
    ti = record.tis.get((task_id, index)) or record.tis.get((task_id, -1))
    return f"{ti[2].isoformat() if ti and ti[2] else ''}#{ti[3] if ti else 0}"


def _spec_of(record: RunRecord, index: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The trial's JobSpec and trial facts from resolve_inputs (one spec, or a list of ``{job_spec, trial}``)."""
    value = record.xcoms.get(("resolve_inputs", -1, "return_value"))
    if isinstance(value, list):
        item = value[index] if 0 <= index < len(value) else None
        if isinstance(item, Mapping):
            spec = item.get("job_spec") if isinstance(item.get("job_spec"), Mapping) else None
            trial = item.get("trial") if isinstance(item.get("trial"), Mapping) else None
            return (dict(spec) if spec else None), (dict(trial) if trial else None)
        return None, None
    return (dict(value), None) if isinstance(value, Mapping) else (None, None)


def _cost_summary(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, Mapping):
        return None
    if doc.get("error"):
        return {"error": doc["error"]}
    from isaaclab_pipeline.cost import summary

    out = summary(doc) or {}
    if doc.get("notes"):
        out["notes"] = list(doc["notes"])[:5]
    return out


PREVIEW = ("summary.json", "reward_curve.png", "metrics.csv", "cost.json", "training-config.json",
           "manifest.json", "runner-log.txt", "exported/policy.onnx", "exported/policy.pt")


def _files(run_id: str, index: int, names: list[str], file_url: Callable[[str, int, str], str] | None) -> list[dict]:
    """The published files worth a link: the headline ones, every video, then the rest (checkpoints) counted."""
    if file_url is None:
        return []
    names = [n for n in names if isinstance(n, str)]
    chosen = [n for n in PREVIEW if n in names or n == "manifest.json"]
    chosen += [n for n in names if n.startswith("videos/")][:10]
    return [{"name": n, "url": file_url(run_id, index, n)} for n in chosen]
