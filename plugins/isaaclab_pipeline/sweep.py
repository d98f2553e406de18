"""Sweeps: a conf's ``sweep`` (seeds × a grid of override values) expanded into trials.

``{"sweep": {"seeds": [1, 2, 3], "grid": {"agent.algorithm.learning_rate": [1e-3, 3e-4]}}}`` is 2 settings × 3 seeds
= 6 trials. A setting is one combination of grid values (the grid's keys in the order written, the product of their
values); every setting runs once per seed. Each trial is the conf of one ordinary run: the conf's overrides, then its
setting's (as ``key=value`` entries), ``trainingConfig.seed`` set to the trial's seed and no ``sweep``.

A trial's id reads as its setting and seed, ``s<setting>-seed<seed>`` (``s1-seed3``); its job UUID is derived from
the sweep's UUID and the id, so retries and re-runs of the DAG run reuse it. A conf without ``sweep`` is one trial
with the run's own UUID and no id: it publishes under ``{output}/{uuid}/`` as always.

A sweep with ``search`` (successive halving, ``halving.py``) expands to its round-1 trials: each trains
``maxIterations // rounds`` iterations, has ``round`` 1, a job UUID derived with the round and publishes under
``{output}/{uuid}/trials/{trial id}/round-1/`` (``outputKey``); the decision steps make the later rounds.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from isaaclab_pipeline import halving
from isaaclab_pipeline import overrides as ov

MAX_SEEDS = 100
MAX_GRID_KEYS = 8
MAX_GRID_VALUES = 100


def trial_job_id(sweep_id: str, trial_id: str) -> str:
    """The job UUID of a sweep's trial: stable for the sweep (its run's UUID) and the trial id."""
    return str(uuid.uuid5(uuid.UUID(sweep_id), trial_id))


def is_sweep(conf: Mapping[str, Any]) -> bool:
    """True when the conf asks for a sweep."""
    return isinstance(conf.get("sweep"), Mapping)


def problems(conf: Mapping[str, Any], key: Callable[[Any], str] = repr) -> dict[str, str]:
    """What JSON Schema cannot say about ``sweep``: the grid's keys and values as overrides, keys set twice, a seed
    given twice.

    :param key: how a grid key reads in a field path (config's quoting).
    :return: field path -> problem ({} when the conf has no sweep or a fine one).
    """
    sweep = conf.get("sweep")
    if not isinstance(sweep, Mapping):
        return {}
    found: dict[str, str] = {}
    grid = sweep.get("grid") or {}
    tc = conf.get("trainingConfig") if isinstance(conf.get("trainingConfig"), Mapping) else {}
    conf_keys = set()
    if isinstance(tc.get("overrides"), list):
        conf_keys = {e.split("=", 1)[0].strip() for e in tc["overrides"] if isinstance(e, str)}
    if isinstance(grid, Mapping):
        for name, values in grid.items():
            where = f"sweep.grid.{key(name)}"
            try:
                ov.check_key(name)
            except ov.OverrideError as exc:
                found[where] = f"{where}: {exc}"
                continue
            if name in conf_keys:
                found[where] = (f"{where}: {name} is also in trainingConfig.overrides; keep it in one place (the grid "
                                "sweeps it, the overrides fix it)")
            if not isinstance(values, list):
                continue  # the schema says it
            for i, value in enumerate(values):
                try:
                    ov.format_value(value)
                except ov.OverrideError as exc:
                    found[f"{where}.{i}"] = f"{where}.{i}: {exc}"
    found.update(halving.problems(conf, lambda c: len(settings(c))))
    if sweep.get("seeds") and tc.get("seed") is not None:
        found["trainingConfig.seed"] = (
            "trainingConfig.seed: a sweep takes its seeds from sweep.seeds; remove trainingConfig.seed (or "
            "sweep.seeds, to run every setting with this one seed)")
    return found


def count(conf: Mapping[str, Any]) -> int:
    """How many trials the conf runs."""
    sweep = conf.get("sweep")
    if not isinstance(sweep, Mapping):
        return 1
    n = len(sweep.get("seeds") or [None])
    for values in (sweep.get("grid") or {}).values():
        n *= len(values)
    return n


def settings(conf: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The grid's combinations in order: ``[{key: value, ...}, ...]`` (one empty setting without a grid)."""
    grid = (conf.get("sweep") or {}).get("grid") or {}
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def setting_label(setting: Mapping[str, Any]) -> str:
    """A setting as one line: ``agent.algorithm.learning_rate=0.001 agent.x='a'`` (``(base)`` when empty)."""
    return " ".join(f"{k}={ov.format_value(v)}" for k, v in setting.items()) or "(base)"


def expand(conf: Mapping[str, Any], run_job_id: str) -> list[dict[str, Any]]:
    """The trials of a validated conf, in order (settings outer, seeds inner).

    Each trial: ``sweepId`` and ``trialId`` (None for a conf without sweep), ``jobId``, ``seed``, ``setting`` (grid
    key → value), ``settingIndex``, ``settingLabel`` and ``conf``: the trial's own conf (overrides merged, seed set,
    no sweep).
    """
    tc = conf["trainingConfig"]
    if not is_sweep(conf):
        return [{"sweepId": None, "trialId": None, "jobId": run_job_id, "seed": tc.get("seed"), "setting": {},
                 "settingIndex": 0, "settingLabel": "(base)", "conf": copy.deepcopy(dict(conf))}]
    sweep = conf["sweep"]
    seeds = list(sweep.get("seeds") or [tc.get("seed")])
    search = halving.search(conf)
    trials = []
    for s_index, setting in enumerate(settings(conf)):
        for seed in seeds:
            trial_id = f"s{s_index}-seed{seed}"
            trial_conf = copy.deepcopy({k: v for k, v in conf.items() if k != "sweep"})
            trial_conf["trainingConfig"]["seed"] = seed
            trial_conf["trainingConfig"]["overrides"] = (
                list(tc.get("overrides") or []) + [f"{k}={ov.format_value(v)}" for k, v in setting.items()])
            trial = {"sweepId": run_job_id, "trialId": trial_id, "jobId": trial_job_id(run_job_id, trial_id),
                     "seed": seed,
                     "setting": dict(setting), "settingIndex": s_index, "settingLabel": setting_label(setting),
                     "conf": trial_conf}
            if search is not None:  # round 1 of successive halving: its share of the iterations, its own folder
                trial_conf["trainingConfig"]["maxIterations"] = halving.increments(tc["maxIterations"],
                                                                                   search["rounds"])[0]
                trial.update(jobId=halving.round_job_id(run_job_id, trial_id, 1), round=1,
                             outputKey=halving.output_key(run_job_id, trial_id, 1))
            trials.append(trial)
    return trials
