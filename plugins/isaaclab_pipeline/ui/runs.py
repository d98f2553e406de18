"""The runs view's data: each DAG run of the pipeline with its steps, live progress, result, cost and links.

Two sources, read by the api-server (locally and on MWAA alike):

- Airflow's metadata DB: the DAG runs, their task instances and the steps' XComs (the normalized conf from
  ``validate_config``, the job handles of ``submit_job``, the link values of ``wait_for_job``, the output URIs of
  ``publish_outputs``); the job steps may be mapped (one map index per sweep trial), so a run holds trials;
- the stores (``storage``): ``progress.json`` in the job's staging folder while it runs, and the published
  ``summary.json``, ``cost.json``, ``metrics.csv`` and ``manifest.json`` once it is done.

The reward curve of a finished trial is its ``metrics.csv``'s mean-reward column. While a trial runs, progress.json
holds only the latest iteration, so the curve is the series of progress.json samples this process has seen
(merged with a ``history`` list, should progress.json carry one); the page also keeps every point it received,
so the curve grows while the page is open whichever api-server worker answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from isaaclab_pipeline import staging as layout
from isaaclab_pipeline.config import DAG_ID
from isaaclab_pipeline.readers import headline_metrics, manifest_files, progress_points, read_json, read_metrics_csv

log = logging.getLogger(__name__)

STEPS = ("validate_config", "resolve_inputs", "submit_job", "wait_for_job", "convert_tensorboard_logs",
         "publish_outputs")
TRIAL_STEPS = STEPS[2:]  # mapped per trial when the DAG fans out a sweep
REPORT_STEP = "compare_trials"
LINK_KEYS = ("isaaclab_batch_job", "isaaclab_job_log")  # links.IsaacLabBatchJobLink/IsaacLabJobLogLink keys
CURVE_POINTS = 200  # at most this many points per curve
HISTORY_JOBS = 200  # running jobs whose sampled progress is kept
ACTIVE = ("queued", "running")


@dataclass
class RunRecord:
    """One DAG run as the metadata DB has it."""

    run_id: str
    state: str
    start_date: datetime | None
    end_date: datetime | None
    run_after: datetime | None
    conf: dict[str, Any]
    note: str | None = None
    triggered_by: str | None = None
    # (task id, map index) -> (state, start, end, try number)
    tis: dict[tuple[str, int], tuple[str | None, datetime | None, datetime | None, int]] = field(default_factory=dict)
    # (task id, map index, key) -> value
    xcoms: dict[tuple[str, int, str], Any] = field(default_factory=dict)


def fetch_runs(session: Any, limit: int = 25, run_id: str | None = None) -> list[RunRecord]:
    """Read the newest ``limit`` runs of the DAG (or the one ``run_id``) with their task instances and XComs."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    query = select(DagRun).where(DagRun.dag_id == DAG_ID)
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    runs = list(session.scalars(query.order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(limit)))
    records = {r.run_id: RunRecord(r.run_id, str(r.state) if r.state else "", r.start_date, r.end_date,
                                   r.run_after, dict(r.conf or {}), _note(r),
                                   getattr(r, "triggering_user_name", None)) for r in runs}
    if not records:
        return []
    rows = session.execute(select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.map_index,
                                  TaskInstance.state, TaskInstance.start_date, TaskInstance.end_date,
                                  TaskInstance.try_number)
                           .where(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id.in_(records)))
    for rid, task_id, map_index, state, start, end, tries in rows:
        records[rid].tis[(task_id, map_index)] = (str(state) if state else None, start, end, tries or 0)
    xcoms = session.scalars(select(XComModel).where(
        XComModel.dag_id == DAG_ID, XComModel.run_id.in_(records),
        XComModel.task_id.in_((*STEPS, REPORT_STEP)), XComModel.key.in_(("return_value", *LINK_KEYS))))
    for x in xcoms:
        try:
            value = XComModel.deserialize_value(x)
        except Exception:  # a value this view cannot read is left out, not fatal
            continue
        records[x.run_id].xcoms[(x.task_id, x.map_index, x.key)] = value
    return [records[r.run_id] for r in runs]


def _note(run: Any) -> str | None:
    try:
        return run.note
    except Exception:  # a detached or lazy relationship
        return None


class Artifacts:
    """Reads what jobs stage and publish, with caches: a finished run's files once, a running job's progress each
    time (sampled into its curve), a running Batch job's cost at most every ``cost_ttl_s``.

    :param aws_conn_id: the connection for s3:// URIs.
    :param read: URI → bytes or None (default: ``storage.for_uri(uri).read_bytes``; tests pass their own).
    :param cost_of: job handle → cost document (default: ``cost.cost_of``).
    """

    def __init__(self, aws_conn_id: str | None = "aws_default", read: Callable[[str], bytes | None] | None = None,
                 cost_of: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None,
                 cost_ttl_s: float = 30.0) -> None:
        self.aws_conn_id = aws_conn_id
        self._read = read
        self._cost_of = cost_of
        self.cost_ttl_s = cost_ttl_s
        self._lock = threading.Lock()
        self._final: OrderedDict[str, Any] = OrderedDict()  # finished runs' documents, by URI
        self._costs: dict[str, tuple[float, Any]] = {}
        self._history: OrderedDict[str, dict[int, float]] = OrderedDict()

    def read(self, uri: str) -> bytes | None:
        """The bytes at ``uri`` (None: absent)."""
        if self._read is not None:
            return self._read(uri)
        from isaaclab_pipeline import storage

        return storage.for_uri(uri, self.aws_conn_id).read_bytes(uri)

    def read_json(self, uri: str, final: bool, version: str = "") -> Any:
        """A JSON document at ``uri`` (None: absent or unreadable); cached for good when ``final``.

        :param version: what changes when the file may have been written again (a cleared run's step ended again).
        """
        key = f"{uri}@{version}"
        if final and key in self._final:
            return self._final[key]
        doc = read_json(self.read(uri))  # None: absent, caught mid-write, or not ours
        if final and doc is not None:
            self._remember(key, doc)
        return doc

    def curve_of_metrics(self, uri: str, version: str = "") -> list[list[float]]:
        """The mean-reward curve of a published metrics.csv (cached for good)."""
        key = f"curve:{uri}@{version}"
        if key in self._final:
            return self._final[key]
        raw = self.read(uri)
        curve = reward_curve_from_csv(raw.decode(errors="replace")) if raw else []
        if raw:
            self._remember(key, curve)
        return curve

    def sample(self, job_key: str, progress: Mapping[str, Any] | None) -> list[list[float]]:
        """Add a progress.json sample to the job's curve and return the curve so far."""
        with self._lock:
            points = self._history.setdefault(job_key, {})
            self._history.move_to_end(job_key)
            while len(self._history) > HISTORY_JOBS:
                self._history.popitem(last=False)
            for it, reward in progress_points(progress):
                points[it] = reward
            return downsample(sorted([it, r] for it, r in points.items()))

    def cost(self, handle: Mapping[str, Any], final: bool, version: str = "") -> dict[str, Any] | None:
        """The job's cost worked out from its backend (a live estimate while it runs)."""
        key = f"{handle.get('backend')}:{handle.get('external_id')}@{version}"
        now = time.monotonic()
        cached = self._costs.get(key)
        if cached and (cached[0] == float("inf") or now - cached[0] < self.cost_ttl_s):
            return cached[1]
        try:
            if self._cost_of is not None:
                doc = self._cost_of(handle)
            else:
                from isaaclab_pipeline.cost import cost_of

                doc = cost_of(handle, self.aws_conn_id)
        except Exception as exc:
            log.warning("runs view: cost of %s not worked out: %s: %s", key, type(exc).__name__, exc)
            doc = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        self._costs[key] = (float("inf") if final and not doc.get("error") else now, doc)
        return doc

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._final[key] = value
            while len(self._final) > 2000:
                self._final.popitem(last=False)


def downsample(points: list[list[float]], limit: int = CURVE_POINTS) -> list[list[float]]:
    """At most ``limit`` points, evenly spread, the first and the last kept."""
    if len(points) <= limit:
        return points
    step = (len(points) - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def reward_curve_from_csv(text: str) -> list[list[float]]:
    """[[step, mean reward], ...] of a metrics.csv (the library's reward tag; non-finite skipped), downsampled."""
    return downsample([[step, value] for step, value in read_metrics_csv(text).reward()])


def result_of(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The headline numbers of a published summary.json (training: mean reward; evaluation: return)."""
    if not isinstance(summary, Mapping):
        return None
    return headline_metrics(summary) or None


# Links

def airflow_run_link(run_id: str) -> str:
    """The run's page in the Airflow UI."""
    return f"/dags/{quote(DAG_ID)}/runs/{quote(run_id, safe='')}"


def console_link(key: str, value: Any) -> str | None:
    """A Batch job or CloudWatch log link from the link values the wait step stored (the provider's formats)."""
    if not isinstance(value, Mapping) or not value:
        return None
    from isaaclab_pipeline.links import IsaacLabBatchJobLink, IsaacLabJobLogLink

    link = {IsaacLabBatchJobLink.key: IsaacLabBatchJobLink, IsaacLabJobLogLink.key: IsaacLabJobLogLink}[key]()
    try:
        return link.format_link(**value) or None
    except Exception:
        return None


def s3_console_link(uri: str, region: str | None = None) -> str | None:
    """The S3 console's page of an ``s3://`` folder."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[5:].partition("/")
    prefix = key.rstrip("/") + "/" if key else ""
    tail = f"&region={region}" if region else ""
    return f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={quote(prefix)}{tail}"


# Putting it together

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
    staging = (handle or {}).get("staging_uri") or (spec or {}).get("stagingUri")
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
        "jobId": (handle or {}).get("job_id") or (spec or {}).get("jobId"),
        "seed": (spec or {}).get("seed"),
        "steps": {step: _state(record, step, index) for step in TRIAL_STEPS},
        "backend": (handle or {}).get("backend"), "externalId": (handle or {}).get("external_id"),
        "progress": None, "curve": [], "result": None, "cost": None, "timings": None, "gpu": None,
        "problems": problems,
        "links": {}, "outputUri": out_uri,
    }
    # live progress (and the final progress of a job that ended without publishing)
    if staging and not out_uri:
        from isaaclab_pipeline import storage

        try:
            progress = artifacts.read_json(storage.join(staging, layout.PROGRESS), final=job_over or run_over,
                                           version=job_version)
        except Exception as exc:
            problems.append(f"progress.json not read: {type(exc).__name__}: {str(exc)[:200]}")
            progress = None
        trial["progress"] = progress
        trial["curve"] = artifacts.sample(trial["jobId"] or staging, progress)
        if waited == "failed":  # the job's own cause (result.json's error), not only the step's state
            try:
                result = artifacts.read_json(storage.join(staging, layout.RESULT), final=True, version=job_version)
                trial["error"] = (result or {}).get("error") if isinstance(result, Mapping) else None
            except Exception as exc:
                problems.append(f"result.json not read: {type(exc).__name__}: {str(exc)[:200]}")
    # published outputs: result, curve, cost, files
    if out_uri:
        from isaaclab_pipeline import storage

        try:
            summary = artifacts.read_json(storage.join(out_uri, "summary.json"), True, out_version)
            trial["result"] = result_of(summary)
            if isinstance(summary, Mapping):  # the job's timings and GPU figures (the convert step's)
                trial["timings"], trial["gpu"] = summary.get("timings"), summary.get("gpu")
            trial["curve"] = artifacts.curve_of_metrics(storage.join(out_uri, "metrics.csv"), out_version)
            cost_doc = artifacts.read_json(storage.join(out_uri, "cost.json"), True, out_version)
            trial["cost"] = _cost_summary(cost_doc)
            manifest = artifacts.read_json(storage.join(out_uri, "manifest.json"), True, out_version)
            names = list(manifest_files(manifest))
            trial["files"] = _files(record.run_id, index, names, file_url)
        except Exception as exc:
            problems.append(f"outputs not read: {type(exc).__name__}: {str(exc)[:200]}")
        trial["links"]["outputs"] = s3_console_link(out_uri, ((handle or {}).get("details") or {}).get("regionName"))
    if trial["cost"] is None and handle:
        trial["cost"] = _cost_summary(artifacts.cost(handle, final=job_over or run_over, version=job_version))
    for key, name in zip(LINK_KEYS, ("batchJob", "cloudWatch"), strict=True):
        value = record.xcoms.get(("wait_for_job", index, key)) or record.xcoms.get(("submit_job", index, key))
        link = console_link(key, value)
        if link:
            trial["links"][name] = link
    return trial


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
