"""``reward_curve.png``: mean reward and mean episode length against the training iteration."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from isaaclab_pipeline.metrics.events import ScalarSeries

PLOT_TAGS: tuple[tuple[str, str], ...] = (
    ("Train/mean_reward", "mean reward"),
    ("Train/mean_episode_length", "mean episode length"),
)


def plot_reward_curve(series: Mapping[str, ScalarSeries], path: Path | str, title: str = "") -> list[str]:
    """Draw one subplot per tag of :data:`PLOT_TAGS` that the run has, sharing the iteration axis.

    matplotlib is imported here, not at module import, and drawn through its object API on the Agg
    canvas: no pyplot global state, no display needed, safe in a worker process.

    :param series: one step-sorted series per tag.
    :param path: the PNG file to write.
    :param title: figure title (e.g. the run name).
    :return: the tags plotted; empty (and no file written) when none of :data:`PLOT_TAGS` is present.
    """
    present = [(tag, label) for tag, label in PLOT_TAGS if tag in series and len(series[tag])]
    if not present:
        return []
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height = 3.0 * len(present) + 0.6
    fig = Figure(figsize=(8, height))
    FigureCanvasAgg(fig)
    # Fixed margins (inches) rather than layout="constrained": its solver draws the figure twice, ~0.3 s of a
    # conversion that must stay >= 10x faster than EventAccumulator (docs/performance.md).
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.55 / height, top=1 - 0.6 / height, hspace=0.25)
    axes = fig.subplots(len(present), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (tag, label) in zip(axes, present, strict=True):
        s = series[tag]
        ax.plot(s.steps, s.values, linewidth=1.0)
        ax.set_ylabel(label)
        ax.set_title(tag, fontsize=9, loc="left")
        ax.grid(True, alpha=0.3)
    axes[-1].set_xlabel("iteration")
    if title:
        fig.suptitle(title)
    fig.savefig(path, format="png", dpi=100)
    return [tag for tag, _ in present]
