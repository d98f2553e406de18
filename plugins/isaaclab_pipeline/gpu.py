"""A job's GPU samples (the runner's ``gpu/node-<rank>.csv``) → ``gpu.csv`` and the figures in ``summary.json``.

``gpu.csv`` has the runner's columns (``isaaclab_runner/gpu_monitor.py``): ``step, wall_time, node, gpu,
utilization_pct, memory_used_mib, memory_total_mib, power_w, temperature_c``, every node's rows in time order.
The figures: the peak memory of the busiest GPU and its card's size, the mean utilisation over all samples, and a
hint when the run used little of the card or ran out of memory.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

GPU_CSV = "gpu.csv"
LITTLE_OF_THE_CARD = 0.5  # a peak under half the card gets the "more envs would fit" hint
HEADROOM = 0.9  # of the card the estimate fills (allocator fragmentation, the policy's growth)


def merge_gpu_csv(node_files: Iterable[Path], out: Path) -> dict[str, Any] | None:
    """Write every node's samples into ``out`` (sorted by wall time, node, GPU); return the figures."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for path in node_files:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            header = header or list(reader.fieldnames or [])
            rows += list(reader)
    if header is None:
        return None
    rows.sort(key=lambda r: (float(r.get("wall_time") or 0), int(r.get("node") or 0), int(r.get("gpu") or 0)))
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return figures(rows)


def figures(rows: list[dict[str, str]]) -> dict[str, Any] | None:
    """Peak memory (MiB) and card size of the busiest GPU, mean utilisation (%), sample and GPU counts."""
    if not rows:
        return None
    peak_row = max(rows, key=lambda r: float(r["memory_used_mib"] or 0))
    utils = [float(r["utilization_pct"]) for r in rows if r.get("utilization_pct")]
    return {"peakMemoryMiB": round(float(peak_row["memory_used_mib"]), 1),
            "memoryTotalMiB": round(float(peak_row["memory_total_mib"]), 1),
            "meanUtilizationPct": round(sum(utils) / len(utils), 1) if utils else None,
            "samples": len(rows), "gpus": len({(r["node"], r["gpu"]) for r in rows})}


def with_hint(doc: dict[str, Any] | None, num_envs: int | None, error: str | None = None) -> dict[str, Any] | None:
    """``doc`` with ``hint``: out of memory (the peak before it), or about how many envs would fit."""
    if not doc:
        return doc
    peak, total = doc["peakMemoryMiB"] / 1024, doc["memoryTotalMiB"] / 1024
    out = dict(doc)
    if error and "out of memory" in error:
        out["hint"] = (f"out of memory: peak {peak:.1f} of {total:.0f} GiB before it at numEnvs {num_envs}; "
                       "lower numEnvs or use a larger GPU")
    elif num_envs and peak > 0 and peak < LITTLE_OF_THE_CARD * total:
        # memory grows about linearly with envs (the simulation's buffers and the rollout storage dominate)
        fit = int(num_envs * HEADROOM * total / peak) // 1024 * 1024 or num_envs
        out["hint"] = (f"peak {peak:.1f} of {total:.0f} GiB at numEnvs {num_envs}: about {fit} envs would fit "
                       "(an estimate from linear scaling)")
    return out
