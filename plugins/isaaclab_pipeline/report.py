"""The sweep's comparison report, written under ``{output}/{sweep uuid}/`` once every trial is over.

- ``trials.csv``: one row per trial (a halving sweep: per trial and ``round``): id, setting, overrides, seed, status
  (and the step that failed, why), final and best mean reward, final episode length, training wall time, env steps,
  GPU-seconds and estimated cost, job UUID, output URI, and the job's timings
  (``timing_<phase>_s``: queue wait, install, Isaac Lab start, training, ... total, attempts);
- ``summary.json``: per setting, across its seeds: the final mean reward's mean, standard deviation and 95%
  confidence interval (Student's t), the best mean reward and episode length means; the best setting (highest mean
  final reward); the failed trials; the sweep's cost; ``timings``: each phase summed over the trials (and their
  attempts), with each trial's own under ``trials``;
- ``cost.json``: the trials' costs summed (failed trials included: their GPUs ran too), as VAMS and the runs view
  read a single run's;
- ``comparison.png``: the mean reward curve of each setting (mean across seeds) with a band from the lowest to the
  highest seed.
- a halving sweep (``halving.py``): ``summary.json``'s settings and best come from the last round, ``rounds`` lists
  each round's ranking and survivors, and comparison.png draws each trial's curve across its rounds; every sweep's
  ``envSteps`` sums its trials' (``env_steps``: maxIterations × numEnvs × the agent's steps per iteration).

Training trials read their published ``metrics.csv`` (the library's mean reward and episode length tags, as
``readers.HEADLINE_TAGS`` names them);
evaluation trials their published ``summary.json`` (return, length, success rate), aggregated the same way.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import statistics
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from isaaclab_pipeline import cost, halving, staging_layout, storage, timings
from isaaclab_pipeline.readers import read_json, read_metrics_csv

log = logging.getLogger(__name__)

STEPS = ("submit_job", "wait_for_job", "convert_tensorboard_logs", "publish_outputs")
COLUMNS = ("trial_id", "round", "setting", "overrides", "seed", "status", "failed_step", "reason",
           "final_mean_reward", "best_mean_reward", "final_episode_length", "success_rate", "wall_time_s", "iterations",
           "env_steps", "gpu_seconds", "estimated_cost_usd", "job_id", "output_uri", "mlflow_run_id")
# the job's timings (job-result.json's ``timings``, phases summed over attempts): phase -> trials.csv column
TIMING_COLUMNS = {phase: "timing_" + "".join(f"_{c.lower()}" if c.isupper() else c for c in phase) + "_s"
                  for phase in (*timings.PHASES, "total")}
COLUMNS = (*COLUMNS, *TIMING_COLUMNS.values(), "attempts")
# Student's t, two-sided 95% (0.975 quantile), by degrees of freedom; 1.96 beyond the table
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (df >= 1)."""
    return _T975[df - 1] if df <= len(_T975) else 1.96


def interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, sample standard deviation and 95% confidence interval of the mean (t-based) of ``values``.

    One value has no interval (``ci95`` null); none gives a null mean.
    """
    vals = [v for v in values if v is not None and math.isfinite(v)]
    out: dict[str, Any] = {"n": len(vals), "mean": None, "std": None, "ci95": None, "values": vals}
    if not vals:
        return out
    out["mean"] = statistics.fmean(vals)
    if len(vals) > 1:
        std = statistics.stdev(vals)
        half = t975(len(vals) - 1) * std / math.sqrt(len(vals))
        out.update(std=std, ci95=[out["mean"] - half, out["mean"] + half])
    return out


def trial_states(task_states: Mapping[str, Any], count: int) -> list[dict[str, str | None]]:
    """Per trial (map index), the state of each mapped step, from ``get_task_states``' ``{"<task>_<i>": state}``."""
    out: list[dict[str, str | None]] = [dict.fromkeys(STEPS) for _ in range(count)]
    for name, state in task_states.items():
        task, _, index = str(name).rpartition("_")
        if task in STEPS and index.isdigit() and int(index) < count:
            out[int(index)][task] = None if state is None else str(state)
    return out


def status_of(states: Mapping[str, str | None] | None, published: bool) -> tuple[str, str]:
    """(status, failed step) of a trial: succeeded once published; else the first step that failed (or did not
    succeed). Without task states, whether its manifest was published decides."""
    if published and (not states or states.get("publish_outputs") in (None, "success")):
        return "succeeded", ""
    if not states:
        return "failed", ""
    for step in STEPS:
        if states.get(step) == "failed":
            return "failed", step
    for step in STEPS:
        if states.get(step) != "success":
            return "failed", step
    return "failed", "publish_outputs"


def _read_text(uri: str, aws_conn_id: str | None) -> str | None:
    try:
        data = storage.for_uri(uri, aws_conn_id).read_bytes(uri)
    except Exception as exc:  # a report never fails on one unreadable file
        log.warning("could not read %s: %s", uri, exc)
        return None
    return None if data is None else data.decode("utf-8", errors="replace")


def trial_cost(item: Mapping[str, Any], aws_conn_id: str | None) -> dict[str, Any] | None:
    """A trial's cost.json: the published one, else the one in staging (a trial that failed after its job ran)."""
    for uri in (storage.join(item["trial"]["outputUri"], cost.COST_NAME),
                storage.join(item["job_spec"]["stagingUri"], staging_layout.METRICS_DIR, cost.COST_NAME)):
        text = _read_text(uri, aws_conn_id)
        if text:
            try:
                doc = json.loads(text)
            except ValueError:
                log.warning("%s is not JSON", uri)
                continue
            if isinstance(doc, Mapping):
                return dict(doc)
    return None


def trial_timings(item: Mapping[str, Any], aws_conn_id: str | None) -> dict[str, Any] | None:
    """A trial's job timings: the published ``job-result.json``'s, else the staged ``result.json``'s (a trial that
    failed after its job ran); None when its job left none."""
    for uri in (storage.join(item["trial"]["outputUri"], "job-result.json"),
                storage.join(item["job_spec"]["stagingUri"], staging_layout.RESULT)):
        doc = read_json(_read_text(uri, aws_conn_id))
        if doc and isinstance(doc.get("timings"), Mapping):
            return dict(doc["timings"])
    return None


def read_curves(metrics_csv: str) -> dict[str, Any]:
    """Reward and episode-length series (the library's headline tags), and the training wall time, from a published
    ``metrics.csv``."""
    table = read_metrics_csv(metrics_csv)
    return {"reward": table.reward(), "length": table.length(), "wallTimeS": table.wall_time_s()}


def trial_row(item: Mapping[str, Any], states: Mapping[str, str | None] | None, aws_conn_id: str | None,
              mlflow_run_id: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """One trial's row of trials.csv, and its reward curve (``[(step, value)]``) for the plot."""
    trial, spec = item["trial"], item["job_spec"]
    out_uri = trial["outputUri"]
    published = _read_text(storage.join(out_uri, "manifest.json"), aws_conn_id) is not None
    status, failed_step = status_of(states, published)
    row: dict[str, Any] = dict.fromkeys(COLUMNS, "")
    row.update(trial_id=trial.get("trialId") or "", round=trial.get("round", ""), setting=trial.get("settingLabel", ""),
               overrides=" ".join(trial["conf"]["trainingConfig"].get("overrides") or []), seed=trial.get("seed"),
               status=status, failed_step=failed_step, job_id=trial["jobId"], output_uri=out_uri,
               mlflow_run_id=mlflow_run_id)
    curves: dict[str, Any] = {"reward": [], "length": []}
    if status != "succeeded":
        result = _read_text(storage.join(spec["stagingUri"], staging_layout.RESULT), aws_conn_id)
        try:
            row["reason"] = (json.loads(result) or {}).get("error", "") if result else ""
        except ValueError:
            row["reason"] = ""
        row["reason"] = row["reason"] or (f"{failed_step} did not succeed" if failed_step else "not published")
        return row, curves
    metrics = _read_text(storage.join(out_uri, "metrics.csv"), aws_conn_id)
    if metrics:
        curves = read_curves(metrics)
        if curves["reward"]:
            row["final_mean_reward"] = curves["reward"][-1][1]
            row["best_mean_reward"] = max(v for _, v in curves["reward"])
            row["iterations"] = curves["reward"][-1][0] + 1
        if curves["length"]:
            row["final_episode_length"] = curves["length"][-1][1]
        row["wall_time_s"] = curves["wallTimeS"] or ""
    summary = read_json(_read_text(storage.join(out_uri, "summary.json"), aws_conn_id)) or {}
    if isinstance(summary.get("return"), Mapping):  # an evaluation: its episode statistics
        row["final_mean_reward"] = row["best_mean_reward"] = summary["return"].get("mean")
        if isinstance(summary.get("length"), Mapping):
            row["final_episode_length"] = summary["length"].get("mean")
        row["success_rate"] = summary.get("successRate") if summary.get("successRate") is not None else ""
        config = _read_text(storage.join(out_uri, "evaluation-config.json"), aws_conn_id)
        row["wall_time_s"] = (json.loads(config).get("wallTimeS") if config else None) or ""
    return row, curves


def sweep_timings(rows: Sequence[Mapping[str, Any]],
                  per_trial: Sequence[Mapping[str, Any] | None]) -> dict[str, Any] | None:
    """``summary.json``'s ``timings``: each phase summed over the trials that left timings (``jobs`` of them, their
    ``attempts``), and each trial's own phases under ``trials``; None when no trial left any."""
    summed = timings.run_timings([t for t in per_trial if t is not None])
    if summed is None:
        return None
    summed["trials"] = [{"trialId": row["trial_id"], **{k: t[k] for k in TIMING_COLUMNS if k in t},
                         "attempts": len(t.get("attempts") or []) or 1}
                        for row, t in zip(rows, per_trial, strict=True) if t is not None]
    return summed


def summarize(rows: Sequence[Mapping[str, Any]], sweep_id: str, conf: Mapping[str, Any],
              total_cost: Mapping[str, Any] | None = None,
              job_timings: Sequence[Mapping[str, Any] | None] | None = None) -> dict[str, Any]:
    """The ``summary.json`` document: per setting, the across-seed statistics; the best setting; the cost; the
    timings (per trial and summed)."""
    by_setting: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_setting.setdefault(row["setting"], []).append(row)
    settings = []
    for label, group in by_setting.items():
        ok = [r for r in group if r["status"] == "succeeded"]

        def values(column: str, ok: list[Mapping[str, Any]] = ok) -> list[float]:
            return [float(r[column]) for r in ok if r[column] not in ("", None)]

        entry = {"setting": label, "trials": [r["trial_id"] for r in group], "succeeded": len(ok),
                 "failed": [r["trial_id"] for r in group if r["status"] != "succeeded"],
                 "seeds": [r["seed"] for r in ok],
                 "finalMeanReward": interval(values("final_mean_reward")),
                 "bestMeanReward": interval(values("best_mean_reward")),
                 "finalEpisodeLength": interval(values("final_episode_length"))}
        if any(r["success_rate"] not in ("", None) for r in ok):
            entry["successRate"] = interval(values("success_rate"))
        settings.append(entry)
    ranked = [s for s in settings if s["finalMeanReward"]["mean"] is not None]
    best = max(ranked, key=lambda s: s["finalMeanReward"]["mean"]) if ranked else None
    return {
        "sweepId": sweep_id,
        "mode": conf.get("trainingConfig", {}).get("mode", "train"),
        "task": conf.get("trainingConfig", {}).get("task"),
        "sweep": conf.get("sweep"),
        "metric": "final mean reward (the library's mean-reward tag at the last iteration; evaluations: mean return)",
        "confidence": "95% confidence interval of the mean across seeds (Student's t); null with one seed",
        "trials": len(rows),
        "succeeded": sum(r["status"] == "succeeded" for r in rows),
        "failed": [{"trialId": r["trial_id"], "step": r["failed_step"], "reason": r["reason"]}
                   for r in rows if r["status"] != "succeeded"],
        "settings": settings,
        "best": None if best is None else {"setting": best["setting"], "finalMeanReward": best["finalMeanReward"]},
        "cost": cost.summary(total_cost),
        "timings": sweep_timings(rows, job_timings or [None] * len(rows)),
    }


def plot_comparison(curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], path: Path, title: str) -> bool:
    """Mean reward per setting against the iteration, with a band from the lowest to the highest seed.

    :param curves: setting label -> the reward curves of its succeeded trials.
    :return: False (and no file) when no setting has a curve.
    """
    drawn = {label: [c for c in cs if c] for label, cs in curves.items()}
    drawn = {label: cs for label, cs in drawn.items() if cs}
    if not drawn:
        return False
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label, cs in drawn.items():
        steps = sorted(set().union(*({s for s, _ in c} for c in cs)))
        maps = [dict(c) for c in cs]
        mean, low, high, xs = [], [], [], []
        for step in steps:
            vals = [m[step] for m in maps if step in m]
            if vals:
                xs.append(step)
                mean.append(statistics.fmean(vals))
                low.append(min(vals))
                high.append(max(vals))
        (line,) = ax.plot(xs, mean, linewidth=1.5, label=f"{label} (n={len(cs)})")
        if len(cs) > 1:
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("iteration")
    ax.set_ylabel("mean reward (band: lowest to highest seed)")
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.savefig(path, format="png", dpi=100)
    return True


def write_report(conf: Mapping[str, Any], sweep_id: str, items: Sequence[Mapping[str, Any]],
                 task_states: Mapping[str, Any] | None, aws_conn_id: str | None = "aws_default",
                 mlflow_runs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Write trials.csv, summary.json and comparison.png under ``{outputS3Path}/{sweep_id}/``.

    :param conf: the sweep's normalized conf.
    :param items: the trials as resolve_inputs returned them (``{"job_spec", "trial"}``), in map-index order.
    :param task_states: ``{"<task>_<map index>": state}`` of this run (None: decided from the outputs alone).
    :param mlflow_runs: job UUID -> MLflow run id of the trials tracked.
    :return: the report's URI, its files and the summary document.
    """
    states = trial_states(task_states, len(items)) if task_states is not None else [None] * len(items)
    rows, curves, costs, per_trial, trial_curves = [], {}, [], [], []
    for item, st in zip(items, states, strict=True):
        row, curve = trial_row(item, st, aws_conn_id, (mlflow_runs or {}).get(item["trial"]["jobId"], ""))
        job_timings = trial_timings(item, aws_conn_id)
        per_trial.append(job_timings)
        if job_timings is not None:
            _add_timings(row, job_timings)
        doc = trial_cost(item, aws_conn_id)
        if doc is not None:
            costs.append(doc)
            _add_cost(row, doc)
        steps = halving.env_steps(item, aws_conn_id) if row["status"] == "succeeded" else None
        row["env_steps"] = "" if steps is None else steps
        rows.append(row)
        curves.setdefault(row["setting"], []).append(curve["reward"])
        trial_curves.append(curve["reward"])
    total_cost = cost.total(costs)
    if total_cost is not None:
        total_cost["trials"] = len(costs)  # also when a single trial had one
        total_cost["notes"] = [f"the sum over {len(costs)} of {len(items)} trials' cost.json"]
    summary = summarize(rows, sweep_id, conf, total_cost, per_trial)
    summary["envSteps"] = sum(r["env_steps"] for r in rows if r["env_steps"] != "")  # the trials that published
    if halving.search(conf) is not None:  # successive halving: every round listed, the best read from the last
        last = max(int(r["round"] or 1) for r in rows)
        final = summarize([r for r in rows if int(r["round"] or 1) == last], sweep_id, conf)
        summary.update(settings=final["settings"], best=final["best"],
                       rounds=halving.rounds_summary(conf, items, aws_conn_id))
        curves = halving.curves_by_trial(rows, trial_curves)
    out_uri = storage.join(conf["outputS3Path"], sweep_id)
    written = _upload_report(out_uri, aws_conn_id, rows, summary, total_cost, curves, sweep_id)
    best = summary["best"]
    log.info("Sweep %s: %d/%d trials succeeded; best setting %s (final mean reward %s); report under %s", sweep_id,
             summary["succeeded"], len(rows), best and best["setting"], best and best["finalMeanReward"]["mean"],
             out_uri)
    summed = summary["timings"]
    if summed:  # format_line counts a list of attempts; the sum holds their number
        log.info("Sweep %s, %d job(s), %d attempt(s) summed: %s", sweep_id, summed["jobs"], summed["attempts"],
                 timings.format_line({k: v for k, v in summed.items() if k in TIMING_COLUMNS}))
    return {"reportUri": out_uri, "files": written, "summary": summary}


def _add_timings(row: dict[str, Any], job_timings: Mapping[str, Any]) -> None:
    """Fill the row's phase columns and attempt count from the trial's merged timings."""
    for phase, column in TIMING_COLUMNS.items():
        if isinstance(job_timings.get(phase), int | float):
            row[column] = job_timings[phase]
    row["attempts"] = len(job_timings.get("attempts") or []) or 1


def _add_cost(row: dict[str, Any], doc: Mapping[str, Any]) -> None:
    """Fill the row's GPU seconds and estimated cost from the trial's cost.json."""
    for column, key in (("gpu_seconds", "gpuSeconds"), ("estimated_cost_usd", "estimatedCostUsd")):
        if doc.get(key) is not None:  # else the row's empty default
            row[column] = doc[key]


def _upload_report(out_uri: str, aws_conn_id: str | None, rows: Sequence[Mapping[str, Any]],
                   summary: Mapping[str, Any], total_cost: Mapping[str, Any] | None,
                   curves: Mapping[str, Sequence[Sequence[tuple[int, float]]]], sweep_id: str) -> list[str]:
    """Write trials.csv, summary.json, cost.json (when any trial had one) and comparison.png, upload them under
    ``out_uri``; return their names."""
    store = storage.for_uri(out_uri, aws_conn_id)
    written = []
    with tempfile.TemporaryDirectory(prefix="isaaclab-report-") as tmp:
        folder = Path(tmp)
        with (folder / "trials.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
        if total_cost is not None:
            (folder / cost.COST_NAME).write_text(json.dumps(total_cost, indent=2, sort_keys=True) + "\n")
        title = f"{summary['task']}: {summary['succeeded']}/{len(rows)} trials, sweep {sweep_id}"
        plot_comparison(curves, folder / "comparison.png", title)
        for path in sorted(folder.iterdir()):
            store.upload(path, storage.join(out_uri, path.name))
            written.append(path.name)
    return written
