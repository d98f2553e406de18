"""Successive halving over a sweep's grid: ``sweep.search = {"method": "halving", "metric", "rounds", "keep"}``.

Round ``r`` (1..rounds) trains every surviving trial to ``maxIterations * r // rounds`` iterations in all: round 1
from scratch for ``maxIterations // rounds``, each later round as a *resume* of the trial's own previous-round
checkpoint for the difference (the optimizer state restored, the iteration count continued). After a round, a
decision step ranks that round's trials by the metric's last value in their published ``metrics.csv`` (higher is
better; ties: the trial id) and keeps ``ceil(n * keep)`` of the ``n`` trials of the round (a trial that failed or
logged no value never survives). Nothing is sampled: a retried decision reads the same published files and returns
the same survivors, with the same job UUIDs.

A trial's job UUID per round is derived from the sweep's UUID, its trial id and the round; it publishes under
``{output}/{sweep uuid}/trials/<trial id>/round-<r>/``. The DAG wires at most ``MAX_ROUNDS`` rounds statically
(Airflow cannot loop): ``decide_round_<r>`` returns the next round's JobSpecs, [] when there is none to run.
"""

from __future__ import annotations

import copy
import logging
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from isaaclab_pipeline import staging_layout, storage

log = logging.getLogger(__name__)

METHOD = "halving"
MIN_ROUNDS, MAX_ROUNDS = 2, 3
DEFAULTS = {"rounds": 2, "keep": 0.5}


def search(conf: Mapping[str, Any]) -> dict[str, Any] | None:
    """The conf's halving search with its defaults filled (metric: the library's headline reward tag); None when the
    conf runs no halving."""
    from isaaclab_pipeline.readers import HEADLINE_TAGS

    sweep = conf.get("sweep")
    found = sweep.get("search") if isinstance(sweep, Mapping) else None
    if not isinstance(found, Mapping) or found.get("method") != METHOD:
        return None
    tc = conf.get("trainingConfig") if isinstance(conf.get("trainingConfig"), Mapping) else {}
    library = tc.get("rlLibrary") or "rsl_rl"
    metric = found.get("metric") or HEADLINE_TAGS.get(library, HEADLINE_TAGS["rsl_rl"])[0]
    return {**DEFAULTS, **dict(found), "metric": metric}


def targets(max_iterations: int, rounds: int) -> list[int]:
    """The iterations each round trains to, in all: ``max_iterations * r // rounds`` for r = 1..rounds."""
    return [max_iterations * r // rounds for r in range(1, rounds + 1)]


def increments(max_iterations: int, rounds: int) -> list[int]:
    """The iterations each round's job trains (its ``maxIterations``): the difference between successive targets."""
    tops = targets(max_iterations, rounds)
    return [b - a for a, b in zip([0, *tops], tops, strict=False)]


def keep_count(n: int, keep: float) -> int:
    """How many of a round's ``n`` trials go on: ``ceil(n * keep)``, at least one."""
    return max(1, math.ceil(n * keep - 1e-9))


def rank(scores: Mapping[str, float | None]) -> list[str]:
    """Trial ids by score, best (highest) first, ties by trial id; trials without a score are left out."""
    return sorted((t for t, s in scores.items() if s is not None and math.isfinite(s)), key=lambda t: (-scores[t], t))


def survivors(scores: Mapping[str, float | None], keep: float) -> list[str]:
    """The trial ids that go on to the next round: the best ``keep_count(len(scores), keep)`` of those ranked."""
    return rank(scores)[: keep_count(len(scores), keep)]


def round_job_id(sweep_id: str, trial_id: str, round_no: int) -> str:
    """A trial's job UUID in one round: stable for the sweep, the trial and the round (a retry reuses it)."""
    return str(uuid.uuid5(uuid.UUID(sweep_id), f"{trial_id}/round-{round_no}"))


def output_key(sweep_id: str, trial_id: str, round_no: int) -> str:
    """Where under ``outputS3Path`` a trial's round publishes: ``<sweep>/trials/<trial id>/round-<r>``."""
    return f"{sweep_id}/trials/{trial_id}/round-{round_no}"


def problems(conf: Mapping[str, Any], count_settings: Callable[[Mapping[str, Any]], int]) -> dict[str, str]:
    """What the schema cannot say about ``sweep.search``: a train-mode conf, at least two settings, at least one
    iteration per round.

    :param count_settings: the number of grid settings of a conf (``sweep.settings``' length).
    :return: field path -> problem ({} when the conf runs no halving or a fine one).
    """
    sweep = conf.get("sweep")
    found = sweep.get("search") if isinstance(sweep, Mapping) else None
    if not isinstance(found, Mapping):
        return {}
    out: dict[str, str] = {}
    keep = found.get("keep")
    if isinstance(keep, int | float) and not isinstance(keep, bool) and not 0 < keep < 1:
        out["sweep.search.keep"] = (f"sweep.search.keep: {keep} is not a fraction between 0 and 1 (both excluded); "
                                    "e.g. 0.5 keeps the better half of each round")
    if isinstance(found.get("method"), str) and found["method"] != METHOD:
        out["sweep.search.method"] = (f"sweep.search.method: {found['method']!r} is not built; use 'halving' "
                                      "(successive halving over the grid; Optuna's TPE over ranges is not built yet)")
    if found.get("method") != METHOD:
        return out
    tc = conf.get("trainingConfig") if isinstance(conf.get("trainingConfig"), Mapping) else {}
    if tc.get("mode", "train") != "train":
        out["sweep.search"] = (f"sweep.search: halving trains and resumes; mode is {tc.get('mode')!r}; remove "
                               "sweep.search (a grid of evaluations needs no rounds)")
    if tc.get("resumeCheckpoint") or tc.get("init") == "resume":
        out["trainingConfig.resumeCheckpoint"] = (
            "trainingConfig.resumeCheckpoint: halving resumes each trial from its own previous round; remove "
            "resumeCheckpoint/init resume (a warm-start of every trial is not supported with sweep.search)")
    grid = sweep.get("grid")
    if not isinstance(grid, Mapping) or not grid or not all(isinstance(v, list) for v in grid.values()):
        out["sweep.grid"] = ("sweep.grid: halving picks among grid settings; give sweep.grid with at least 2 "
                             "settings (e.g. {\"agent.algorithm.learning_rate\": [1e-3, 3e-4]})")
    elif count_settings(conf) < 2:
        out["sweep.grid"] = (f"sweep.grid: halving needs at least 2 settings to choose from, the grid has "
                             f"{count_settings(conf)}; add values or remove sweep.search")
    rounds, iterations = found.get("rounds", DEFAULTS["rounds"]), tc.get("maxIterations")
    if isinstance(rounds, int) and isinstance(iterations, int) and MIN_ROUNDS <= rounds <= MAX_ROUNDS \
            and iterations < rounds:
        out["trainingConfig.maxIterations"] = (
            f"trainingConfig.maxIterations: {iterations} iteration(s) cannot be split into {rounds} rounds of at "
            f"least one; raise maxIterations to {rounds} or more, or lower sweep.search.rounds")
    return out


def last_value(metrics_csv: str | bytes | None, metric: str) -> float | None:
    """The metric's value at the highest step of a ``metrics.csv`` (None when the tag logged nothing)."""
    from isaaclab_pipeline.readers import read_metrics_csv

    series = read_metrics_csv(metrics_csv).series(metric)
    return series[-1][1] if series else None


def round_scores(items: Sequence[Mapping[str, Any]], metric: str,
                 aws_conn_id: str | None) -> dict[str, float | None]:
    """trial id -> the metric's last value in the round's published ``metrics.csv`` (None: not published)."""
    out: dict[str, float | None] = {}
    for item in items:
        trial = item["trial"]
        uri = storage.join(trial["outputUri"], "manifest.json")
        store = storage.for_uri(uri, aws_conn_id)
        try:  # a trial counts once published (manifest.json is written last)
            text = store.read_bytes(storage.join(trial["outputUri"], "metrics.csv")) if store.exists(uri) else None
        except Exception as exc:  # one unreadable trial does not survive, the others are still ranked
            log.warning("could not read the metrics of trial %s: %s", trial["trialId"], exc)
            text = None
        out[trial["trialId"]] = last_value(text, metric)
    return out


def last_checkpoint(out_uri: str, rl_library: str, aws_conn_id: str | None) -> str | None:
    """The highest-iteration training checkpoint a round published under ``<out>/checkpoints/``."""
    from isaaclab_pipeline.discovery import discover

    folder = storage.join(out_uri, staging_layout.CHECKPOINTS_DIR)  # publish keeps the staged name
    return discover(storage.for_uri(folder, aws_conn_id).list(folder), rl_library).uri


def decide(conf: Mapping[str, Any], sweep_id: str, round_no: int, previous: Sequence[Mapping[str, Any]] | None,
           settings: Any) -> list[dict[str, Any]]:
    """The JobSpecs of round ``round_no``: the previous round's survivors, each resumed from its own last checkpoint.

    :param previous: the previous round's trials (``{"job_spec", "trial"}``, as resolve or the last decision gave).
    :param settings: the deployment's PipelineSettings.
    :return: ``[{"job_spec", "trial"}]``; [] when the conf runs no halving, has fewer rounds, or nothing survived.
    """
    from isaaclab_pipeline.resolve import ResolveError, build_job_spec

    found = search(conf)
    if found is None or round_no > found["rounds"] or not previous:
        return []
    scores = round_scores(previous, found["metric"], settings.aws_conn_id)
    kept = survivors(scores, found["keep"])
    log.info("Round %d of sweep %s: %s by %s (last value): %s; %d of %d go on: %s", round_no - 1, sweep_id,
             len(scores), found["metric"], {t: scores[t] for t in rank(scores)}, len(kept), len(scores), kept)
    step = increments(conf["trainingConfig"]["maxIterations"], found["rounds"])[round_no - 1]
    by_id = {item["trial"]["trialId"]: item for item in previous}
    out = []
    for trial_id in kept:
        trial = by_id[trial_id]["trial"]
        tc = trial["conf"]["trainingConfig"]
        checkpoint = last_checkpoint(trial["outputUri"], tc["rlLibrary"], settings.aws_conn_id)
        if checkpoint is None:
            raise ResolveError(f"sweep.search: trial {trial_id} published no checkpoint in round {round_no - 1} "
                               f"(under {trial['outputUri']}/checkpoints/), so it cannot resume; check the trial's "
                               "agent.save_interval and its job log")
        trial_conf = copy.deepcopy(trial["conf"])
        trial_conf["trainingConfig"].update(resumeCheckpoint=checkpoint, init="resume", maxIterations=step)
        job_id, key = round_job_id(sweep_id, trial_id, round_no), output_key(sweep_id, trial_id, round_no)
        spec = build_job_spec(trial_conf, job_id, settings, output_key=key)
        out.append({"job_spec": spec.to_dict(), "trial": {
            **trial, "jobId": job_id, "round": round_no, "conf": trial_conf, "outputKey": key,
            "outputUri": storage.join(conf["outputS3Path"], key), "resumedFrom": checkpoint,
            "previousScore": scores[trial_id]}})
    return out


def rounds_summary(conf: Mapping[str, Any], items: Sequence[Mapping[str, Any]],
                   aws_conn_id: str | None) -> list[dict[str, Any]]:
    """``summary.json``'s ``rounds``: per round, its iterations, its trials' scores (ranked) and who went on."""
    found = search(conf)
    if found is None:
        return []
    tops = targets(conf["trainingConfig"]["maxIterations"], found["rounds"])
    by_round: dict[int, list[Mapping[str, Any]]] = {}
    for item in items:
        by_round.setdefault(int(item["trial"].get("round") or 1), []).append(item)
    out = []
    for round_no in sorted(by_round):
        scores = round_scores(by_round[round_no], found["metric"], aws_conn_id)
        nxt = by_round.get(round_no + 1, [])
        out.append({"round": round_no, "iterations": tops[round_no - 1],
                    "iterationsThisRound": tops[round_no - 1] - (tops[round_no - 2] if round_no > 1 else 0),
                    "metric": found["metric"], "trials": [i["trial"]["trialId"] for i in by_round[round_no]],
                    "ranking": [{"trialId": t, "value": scores[t]} for t in rank(scores)],
                    "survivors": [i["trial"]["trialId"] for i in nxt] if round_no < found["rounds"] else []})
    return out


def env_steps(item: Mapping[str, Any], aws_conn_id: str | None) -> int | None:
    """The env steps a trial's job trained: its ``maxIterations`` × ``numEnvs`` × the steps per iteration of its
    published ``agent-params.txt`` (None when it published none)."""
    from isaaclab_pipeline.readers import steps_per_iteration

    trial = item["trial"]
    uri = storage.join(trial["outputUri"], "agent-params.txt")
    try:
        text = storage.for_uri(uri, aws_conn_id).read_bytes(uri)
    except Exception as exc:  # a report never fails on one unreadable file
        log.warning("could not read %s: %s", uri, exc)
        return None
    per_iteration = steps_per_iteration(text.decode(errors="replace")) if text else None
    tc = trial["conf"]["trainingConfig"]
    if not per_iteration or tc.get("mode", "train") != "train":
        return None
    return int(tc["maxIterations"]) * int(tc["numEnvs"]) * per_iteration


def curves_by_trial(rows: Sequence[Mapping[str, Any]], curves: Sequence[Sequence[tuple[int, float]]]
                    ) -> dict[str, list[list[tuple[int, float]]]]:
    """comparison.png's curves for a halving sweep: one per trial, its rounds joined (a survivor's curve goes on
    where its round-1 curve ended; a loser's stops there). rsl_rl logs a resumed round's first iteration under the
    checkpoint's index again: the earlier round's point is kept there."""
    out: dict[str, list[list[tuple[int, float]]]] = {}
    for row, curve in sorted(zip(rows, curves, strict=True), key=lambda rc: (rc[0]["trial_id"], rc[0]["round"])):
        [joined] = out.setdefault(f"{row['trial_id']} {row['setting']}", [[]])
        seen = {step for step, _ in joined}
        joined.extend(point for point in curve if point[0] not in seen)
    return out
