"""MLflow tracking: each published trial as an MLflow run, a sweep as their parent run, through ``MlflowClient``.

Switched on by the Variable ``isaaclab_mlflow_tracking_uri`` (an ``http(s)://`` tracking server, a SageMaker managed
MLflow ARN with the ``sagemaker-mlflow`` plugin, ...); ``mlflow`` is imported only then, so a deployment without
tracking needs no MLflow on its workers. Credentials stay where MLflow reads them (``MLFLOW_TRACKING_USERNAME`` /
``_PASSWORD`` / ``_TOKEN`` in the workers' environment, or AWS credentials for SageMaker): never in a conf, a log or
an output. A URI carrying ``user:password@`` is shown with the password hidden.

A trial's run (experiment: Variable ``isaaclab_mlflow_experiment``, default ``isaac-lab-training``):

- tags: ``isaaclab.jobId``, ``isaaclab.dagRunId``, ``isaaclab.outputUri``, for a sweep trial ``isaaclab.sweepId``,
  ``isaaclab.trialId`` and ``mlflow.parentRunId`` (nested under the sweep's run), and for a halving round after the
  first ``isaaclab.round`` (its run is named ``<trial id>/round-<r>``);
- params: the normalized conf flattened (``trainingConfig.numEnvs``...), ``seed``, ``overrides`` (all, in order) and
  one ``override.<key>`` per override;
- metrics: every column of the published ``metrics.csv`` with its history (step = iteration, timestamp = the event's
  wall time);
- artifacts: ``exported/`` (policy.pt, policy.onnx), the newest checkpoint under ``checkpoints/``, ``metrics.csv``,
  ``summary.json``, ``reward_curve.png``, ``training-config.json``.

Logging is idempotent: a retried publish replaces the run it logged before (same ``isaaclab.jobId``).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from isaaclab_pipeline import staging_layout, storage
from isaaclab_pipeline.readers import manifest_files, read_json, read_metrics_csv

log = logging.getLogger(__name__)

ARTIFACTS = ("metrics.csv", "summary.json", "reward_curve.png", "training-config.json", "exported/policy.pt",
             "exported/policy.onnx", "trials.csv", "comparison.png")
BATCH = 1000  # MLflow's limit of metrics per log_batch (100 params/tags)
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-. /]")


class TrackingUnavailable(RuntimeError):
    """The deployment asks for MLflow tracking but the client is not installed on this worker."""


def shown(uri: str) -> str:
    """The tracking URI as it may be logged: a password in it replaced by ``***``."""
    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def client(uri: str) -> Any:
    """An ``MlflowClient`` for ``uri`` (mlflow is imported here, only when tracking is on).

    :raises TrackingUnavailable: when mlflow is not installed.
    """
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise TrackingUnavailable(
            f"the Variable isaaclab_mlflow_tracking_uri is set ({shown(uri)}) but mlflow is not installed on the "
            "workers; add mlflow-skinny to the MWAA requirements.txt (docs/experiments.md) or unset the Variable"
        ) from exc
    return MlflowClient(tracking_uri=uri)


def experiment_id(mlflow_client: Any, name: str) -> str:
    """The id of experiment ``name``, created when missing (a concurrent creation is tolerated)."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return mlflow_client.create_experiment(name)
    except Exception:
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def flatten(conf: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """The conf as MLflow params: ``{"trainingConfig.numEnvs": "64", ...}`` (lists as JSON; no ``vams`` block)."""
    import json

    out: dict[str, str] = {}
    for key, value in conf.items():
        if not prefix and key in ("vams", "sweep"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def trial_params(conf: Mapping[str, Any]) -> dict[str, str]:
    """Params of a trial: its flattened conf, ``seed``, ``overrides`` and one ``override.<key>`` per override."""
    params = flatten(conf)
    tc = conf.get("trainingConfig", {})
    entries = list(tc.get("overrides") or [])
    params["seed"] = str(tc.get("seed"))
    params["overrides"] = " ".join(entries)
    params.pop("trainingConfig.overrides", None)
    for entry in entries:
        key, _, value = entry.partition("=")
        params[f"override.{key}"] = value
    return {k: v[:6000] for k, v in params.items()}


def metric_key(tag: str) -> str:
    """A TensorBoard tag as an MLflow metric key (characters MLflow refuses become ``_``)."""
    return _METRIC_KEY.sub("_", tag)[:250]


def metrics_from_csv(path: Path) -> list[Any]:
    """Every finite value of a published ``metrics.csv`` as MLflow ``Metric``\\ s (histories by step)."""
    from mlflow.entities import Metric

    return [Metric(metric_key(tag), value, int((wall or 0) * 1000), step)
            for step, wall, values in read_metrics_csv(path.read_text(errors="replace")).rows
            for tag, value in values.items()]


def _find_runs(mlflow_client: Any, exp_id: str, tag: str, value: str) -> list[Any]:
    return list(mlflow_client.search_runs([exp_id], filter_string=f"tags.`{tag}` = '{value}'", max_results=50))


def _log_batches(mlflow_client: Any, run_id: str, metrics: Sequence[Any] = (), params: Mapping[str, str] | None = None,
                 tags: Mapping[str, str] | None = None) -> None:
    from mlflow.entities import Param, RunTag

    params_list = [Param(k, v) for k, v in (params or {}).items()]
    tags_list = [RunTag(k, v) for k, v in (tags or {}).items()]
    for i in range(0, len(params_list), 100):
        mlflow_client.log_batch(run_id, params=params_list[i:i + 100])
    for i in range(0, len(tags_list), 100):
        mlflow_client.log_batch(run_id, tags=tags_list[i:i + 100])
    for i in range(0, len(metrics), BATCH):
        mlflow_client.log_batch(run_id, metrics=list(metrics[i:i + BATCH]))


def _newest_checkpoint(names: Sequence[str]) -> str | None:
    """The published checkpoint with the highest trailing number (``checkpoints/model_4.pt`` over ``model_2.pt``)."""
    ckpts = [n for n in names if n.startswith("checkpoints/") and n.count("/") == 1
             and n.endswith(staging_layout.CHECKPOINT_SUFFIXES)]

    def number(name: str) -> int:
        match = re.search(r"(\d+)(?=\.[^.]+$)", PurePosixPath(name).name)
        return int(match.group(1)) if match else -1

    return max(ckpts, key=lambda n: (number(n), n)) if ckpts else None


def _download(out_uri: str, names: Sequence[str], folder: Path, aws_conn_id: str | None) -> list[str]:
    store = storage.for_uri(out_uri, aws_conn_id)
    got = []
    for name in names:
        uri = storage.join(out_uri, name)
        try:
            if not store.exists(uri):
                continue
            store.download(uri, storage.safe_target(folder, name))
        except Exception as exc:
            log.warning("MLflow: could not fetch %s to log it: %s", uri, exc)
            continue
        got.append(name)
    return got


def start_sweep_run(uri: str, experiment: str, sweep_id: str, conf: Mapping[str, Any], dag_run_id: str) -> str:
    """The sweep's parent run (created once per sweep; a retry finds it by ``isaaclab.sweepId``)."""
    import json

    mlflow_client = client(uri)
    exp = experiment_id(mlflow_client, experiment)
    for run in _find_runs(mlflow_client, exp, "isaaclab.sweepId", sweep_id):
        if run.data.tags.get("isaaclab.kind") == "sweep":
            return run.info.run_id
    tc = conf.get("trainingConfig", {})
    run = mlflow_client.create_run(exp, run_name=f"sweep-{tc.get('task')}-{sweep_id[:8]}", tags={
        "isaaclab.kind": "sweep", "isaaclab.sweepId": sweep_id, "isaaclab.dagRunId": dag_run_id,
        "isaaclab.outputUri": storage.join(conf["outputS3Path"], sweep_id)})
    params = flatten(conf)
    params.update({"sweep.seeds": json.dumps((conf.get("sweep") or {}).get("seeds")),
                   "sweep.grid": json.dumps((conf.get("sweep") or {}).get("grid"))})
    _log_batches(mlflow_client, run.info.run_id, params={k: v[:6000] for k, v in params.items()})
    log.info("MLflow: sweep run %s in experiment %r at %s", run.info.run_id, experiment, shown(uri))
    return run.info.run_id


def run_tags(*, job_id: str, conf: Mapping[str, Any], out_uri: str, dag_run_id: str,
             trial: Mapping[str, Any] | None = None, parent_run_id: str | None = None) -> tuple[dict[str, str], str]:
    """A published run's MLflow tags and run name: a single run, a sweep's trial, or a halving round of one."""
    tc, trial = conf.get("trainingConfig", {}), trial or {}
    tags = {"isaaclab.kind": "trial" if trial.get("trialId") else "run", "isaaclab.jobId": job_id,
            "isaaclab.dagRunId": dag_run_id, "isaaclab.outputUri": out_uri, "isaaclab.task": str(tc.get("task"))}
    name = f"{tc.get('task')}-{job_id[:8]}"
    if trial.get("trialId"):
        tags.update({"isaaclab.sweepId": str(trial.get("sweepId", "")), "isaaclab.trialId": trial["trialId"],
                     "isaaclab.setting": trial.get("settingLabel", "")})
        name = trial["trialId"]
        if trial.get("round"):  # halving's later rounds: one run per round, told apart by tag and name
            tags["isaaclab.round"] = str(trial["round"])
            name = f"{name}/round-{trial['round']}"
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    return tags, name


def log_trial(uri: str, experiment: str, *, job_id: str, conf: Mapping[str, Any], out_uri: str, dag_run_id: str,
              trial: Mapping[str, Any] | None = None, parent_run_id: str | None = None, status: str = "FINISHED",
              aws_conn_id: str | None = "aws_default") -> str:
    """Log one published run (a sweep's trial or a single run) as an MLflow run; return its run id."""
    mlflow_client = client(uri)
    exp = experiment_id(mlflow_client, experiment)
    for old in _find_runs(mlflow_client, exp, "isaaclab.jobId", job_id):
        mlflow_client.delete_run(old.info.run_id)  # a retried publish: one run per job
    tags, name = run_tags(job_id=job_id, conf=conf, out_uri=out_uri, dag_run_id=dag_run_id, trial=trial,
                          parent_run_id=parent_run_id)
    run = mlflow_client.create_run(exp, run_name=name, tags=tags)
    run_id = run.info.run_id
    try:
        with tempfile.TemporaryDirectory(prefix="isaaclab-mlflow-") as tmp:
            folder = Path(tmp)
            manifest = _download(out_uri, ["manifest.json"], folder, aws_conn_id)
            names = list(manifest_files(read_json((folder / "manifest.json").read_bytes()))) if manifest else []
            wanted = [n for n in ARTIFACTS if n in names] + [c for c in [_newest_checkpoint(names)] if c]
            got = _download(out_uri, wanted, folder, aws_conn_id)
            metrics = metrics_from_csv(folder / "metrics.csv") if "metrics.csv" in got else []
            _log_batches(mlflow_client, run_id, metrics=metrics, params=trial_params(conf))
            for name in got:
                parent = str(PurePosixPath(name).parent)
                mlflow_client.log_artifact(run_id, str(folder / name), None if parent == "." else parent)
        mlflow_client.set_terminated(run_id, status)
    except Exception:
        mlflow_client.set_terminated(run_id, "FAILED")
        raise
    log.info("MLflow: run %s (%d metric values, %d artifacts) in experiment %r at %s", run_id, len(metrics),
             len(got), experiment, shown(uri))
    return run_id


def finish_sweep_run(uri: str, parent_run_id: str, report: Mapping[str, Any], report_uri: str,
                     aws_conn_id: str | None = "aws_default") -> None:
    """Log the report on the sweep's run (best setting's numbers, the total cost, the report's files) and end it:
    FINISHED when every trial succeeded, else FAILED."""
    mlflow_client = client(uri)
    summary = report["summary"]
    metrics: dict[str, float] = {"trials": summary["trials"], "trials_succeeded": summary["succeeded"]}
    best = summary.get("best")
    if best and best["finalMeanReward"]["mean"] is not None:
        metrics["best_setting_final_mean_reward"] = best["finalMeanReward"]["mean"]
    cost = summary.get("cost") or {}
    for key, name in (("wallSeconds", "wall_seconds"), ("gpuSeconds", "gpu_seconds"),
                      ("estimatedCostUsd", "estimated_cost_usd")):
        if cost.get(key) is not None:
            metrics[name] = cost[key]
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    _log_batches(mlflow_client, parent_run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                 tags={"isaaclab.bestSetting": best["setting"] if best else ""})
    with tempfile.TemporaryDirectory(prefix="isaaclab-mlflow-") as tmp:
        folder = Path(tmp)
        for name in _download(report_uri, list(report["files"]), folder, aws_conn_id):
            mlflow_client.log_artifact(parent_run_id, str(folder / name))
    mlflow_client.set_terminated(parent_run_id, "FINISHED" if summary["succeeded"] == summary["trials"] else "FAILED")
