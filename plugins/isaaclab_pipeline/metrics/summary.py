"""``summary.json``: headline numbers per tag, and the best mean reward.

Layout::

    {
      "tags": {"<tag>": {"last": float, "min": float, "max": float, "count": int, "last_step": int}, ...},
      "best_mean_reward": {"value": float, "step": int} | null,
      "steps": int, "scalars": int
    }

``last`` is the value at the tag's greatest step; ``min``/``max`` ignore NaN and infinities; a number that
is not finite (or a min/max over no finite value) is written as ``null`` so the file stays strict JSON.
``best_mean_reward`` is the greatest finite ``Train/mean_reward`` and the first step that reached it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from isaaclab_pipeline.metrics.events import ScalarSeries

MEAN_REWARD_TAG = "Train/mean_reward"
MEAN_EPISODE_LENGTH_TAG = "Train/mean_episode_length"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def tag_summary(series: ScalarSeries) -> dict[str, Any]:
    """``{last, min, max, count, last_step}`` of one step-sorted series.

    :param series: a non-empty series sorted by step.
    """
    import numpy as np

    finite = series.values[np.isfinite(series.values)]
    return {
        "last": _finite(float(series.values[-1])),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "count": len(series),
        "last_step": int(series.steps[-1]),
    }


def best_value(series: ScalarSeries) -> dict[str, Any] | None:
    """Greatest finite value of a series and the first step that reached it, or None if none is finite.

    :param series: a series sorted by step.
    """
    import numpy as np

    finite = np.isfinite(series.values)
    if not finite.any():
        return None
    values = np.where(finite, series.values, -np.inf)
    i = int(np.argmax(values))  # argmax returns the first maximum: the earliest step
    return {"value": float(values[i]), "step": int(series.steps[i])}


def build_summary(series: Mapping[str, ScalarSeries], steps: int) -> dict[str, Any]:
    """The ``summary.json`` document.

    :param series: one step-sorted series per tag.
    :param steps: number of rows of the wide table.
    """
    reward = series.get(MEAN_REWARD_TAG)
    return {
        "tags": {tag: tag_summary(series[tag]) for tag in sorted(series)},
        "best_mean_reward": best_value(reward) if reward is not None else None,
        "steps": steps,
        "scalars": sum(len(s) for s in series.values()),
    }


def write_summary_json(series: Mapping[str, ScalarSeries], path: Path | str, steps: int) -> dict[str, Any]:
    """Write ``summary.json`` and return the document.

    :param series: one step-sorted series per tag.
    :param path: the JSON file to write.
    :param steps: number of rows of the wide table.
    """
    doc = build_summary(series, steps)
    Path(path).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return doc
