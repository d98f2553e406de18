"""One reader per file format the pipeline writes and reads back: ``metrics.csv``, ``progress.json``,
``manifest.json`` and ``summary.json``.

The runs view (``ui/``), the sweep report (``report.py``), MLflow (``tracking/mlflow.py``), VAMS's success output
(``vams/callbacks.py``) and the CLI (``tools/isaaclab_tools/cli.py``) read these files only through here, so they
agree on which column is a run's reward whatever library trained it.

A library's headline tags (``HEADLINE_TAGS``) are the TensorBoard tags its trainer writes for the mean episode
reward and length: rsl_rl's ``Train/mean_reward``, skrl's ``Reward / Total reward (mean)``, rl_games'
``rewards/iter`` (by epoch). A table with none of them falls back to the first tag naming a mean reward, then the
first naming a reward.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# library -> (mean reward tag, mean episode length tag), as each trainer writes them to TensorBoard
HEADLINE_TAGS: dict[str, tuple[str, str]] = {
    "rsl_rl": ("Train/mean_reward", "Train/mean_episode_length"),
    "skrl": ("Reward / Total reward (mean)", "Episode / Total timesteps (mean)"),
    "rl_games": ("rewards/iter", "episode_lengths/iter"),
}
INDEX_COLUMNS = ("step", "wall_time")  # metrics.csv's first two columns; every other one is a tag


def _finite(value: Any) -> float | None:
    """A finite float from a CSV cell or JSON number, else None."""
    if value in (None, "") or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _first_tag(tags: Sequence[str], which: int, words: tuple[str, ...]) -> str | None:
    for library_tags in HEADLINE_TAGS.values():
        if library_tags[which] in tags:
            return library_tags[which]
    for test in (lambda t: all(w in t for w in ("mean", *words)), lambda t: all(w in t for w in words)):
        for tag in tags:
            if tag not in INDEX_COLUMNS and test(tag.lower()):
                return tag
    return None


def reward_tag(tags: Sequence[str]) -> str | None:
    """The mean-reward tag among ``tags`` (a metrics.csv header or summary.json's tags), or None."""
    return _first_tag(list(tags), 0, ("reward",))


def length_tag(tags: Sequence[str]) -> str | None:
    """The mean-episode-length tag among ``tags``, or None (no fallback: lengths are named too differently)."""
    return next((t[1] for t in HEADLINE_TAGS.values() if t[1] in tags), None)


# metrics.csv

@dataclass
class MetricsTable:
    """A ``metrics.csv``: one row per step, one column per TensorBoard tag (empty where a tag has no value)."""

    tags: list[str]
    rows: list[tuple[int, float | None, dict[str, float]]] = field(default_factory=list)  # step, wall time, values

    def series(self, tag: str | None) -> list[tuple[int, float]]:
        """``[(step, value)]`` of one tag, finite values only, by step."""
        if tag is None:
            return []
        return sorted((step, values[tag]) for step, _, values in self.rows if tag in values)

    def reward(self) -> list[tuple[int, float]]:
        """The mean-reward series (the library's headline tag)."""
        return self.series(reward_tag(self.tags))

    def length(self) -> list[tuple[int, float]]:
        """The mean-episode-length series."""
        return self.series(length_tag(self.tags))

    def wall_time_s(self) -> float | None:
        """Seconds between the first and the last row holding a reward (None: fewer than two)."""
        tag = reward_tag(self.tags)
        times = [t for _, t, values in self.rows if t is not None and tag in values]
        return round(max(times) - min(times), 3) if len(times) > 1 else None


def read_metrics_csv(text: str | bytes | None) -> MetricsTable:
    """Parse a ``metrics.csv`` (an empty table for None, an empty file or a header alone)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    reader = csv.reader(io.StringIO(text or ""))
    header = next(reader, None) or []
    table = MetricsTable([h for h in header if h not in INDEX_COLUMNS])
    for cells in reader:
        row = dict(zip(header, cells, strict=False))
        step = _finite(row.get("step"))
        if step is None:
            continue
        values = {tag: v for tag in table.tags if (v := _finite(row.get(tag))) is not None}
        table.rows.append((int(step), _finite(row.get("wall_time")), values))
    return table


# progress.json, manifest.json, summary.json

def read_json(raw: str | bytes | None) -> dict[str, Any] | None:
    """A JSON object document (progress.json, manifest.json, summary.json); None when absent, caught mid-write or
    not an object."""
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def progress_points(progress: Mapping[str, Any] | None) -> Iterable[tuple[int, float]]:
    """``[(iteration, mean reward)]`` of a progress.json: its ``history`` (a runner that keeps one), then the
    latest sample."""
    if not isinstance(progress, Mapping):
        return []
    out = []
    for item in progress.get("history") or []:
        if isinstance(item, list | tuple) and len(item) >= 2:
            it, reward = item[0], item[1]
        elif isinstance(item, Mapping):
            it, reward = item.get("iteration"), item.get("meanReward")
        else:
            continue
        if _finite(it) is not None and _finite(reward) is not None:
            out.append((int(it), float(reward)))
    if _finite(progress.get("iteration")) is not None and _finite(progress.get("meanReward")) is not None:
        out.append((int(progress["iteration"]), float(progress["meanReward"])))
    return out


def manifest_files(manifest: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """The published files a manifest.json lists, path → its entry (size, sha256...), in its order."""
    files = manifest.get("files") if isinstance(manifest, Mapping) else None
    return {f["path"]: f for f in files or [] if isinstance(f, Mapping) and isinstance(f.get("path"), str)}


def headline_metrics(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The few numbers a user looks at first in a summary.json (a training's, an evaluation's or a sweep's)."""
    tags = summary.get("tags") or {}
    out: dict[str, Any] = {}
    if isinstance(summary.get("settings"), list):  # a sweep's report: how many trials ran, which setting won
        out["trials"], out["trialsSucceeded"] = summary.get("trials"), summary.get("succeeded")
        best = summary.get("best")
        if isinstance(best, Mapping):
            out["bestSetting"] = best.get("setting")
            out["bestFinalMeanReward"] = (best.get("finalMeanReward") or {}).get("mean")
        return out
    if isinstance(summary.get("return"), Mapping):  # evaluate/play: the runner's episode statistics
        out["episodes"] = summary.get("episodes")
        out["returnMean"], out["returnStd"] = summary["return"]["mean"], summary["return"]["std"]
        if isinstance(summary.get("length"), Mapping):
            out["episodeLengthMean"] = summary["length"]["mean"]
        if summary.get("successRate") is not None:
            out["successRate"] = summary["successRate"]
    best = summary.get("best_mean_reward")
    if best:
        out["bestMeanReward"], out["bestMeanRewardStep"] = best["value"], best["step"]
    for tag, key in ((reward_tag(list(tags)), "lastMeanReward"), (length_tag(list(tags)), "lastEpisodeLength")):
        if tag in tags:
            out[key], out["lastStep"] = tags[tag]["last"], tags[tag]["last_step"]
    return out


# agent-params.txt

# the rollout length per iteration in each library's agent config (params/agent.yaml, published as agent-params.txt)
_STEPS_PER_ITERATION = re.compile(r"^\s*(?:num_steps_per_env|rollouts|horizon_length):\s*(\d+)\s*$", re.MULTILINE)


def steps_per_iteration(agent_params: str) -> int | None:
    """Environment steps each env takes per iteration: rsl_rl's num_steps_per_env, skrl's rollouts, rl_games's
    horizon_length; None when the agent config names none."""
    match = _STEPS_PER_ITERATION.search(agent_params or "")
    return int(match.group(1)) if match else None
