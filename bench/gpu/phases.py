"""Where an rsl_rl iteration's time goes, from the console logs the GPU benchmarks keep.

    python bench/gpu/phases.py bench/results/gpu-2026-11-27-h200/multigpu/logs

rsl_rl prints "Collection time" (stepping the envs) and "Learning time" (the PPO update, including the
gradient all-reduce on several GPUs) for every iteration. Prints their means over iterations 10-99 per log and
per shape (the log name up to ``-r<rep>``); worker logs (``rank1``) are skipped, rank 0 prints the same timing.
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ITERATION = re.compile(r"Learning iteration (\d+)/\d+")
FIELDS = {"collection": r"Collection time: ([\d.]+)s", "learning": r"Learning time: ([\d.]+)s",
          "iteration": r"Iteration time: ([\d.]+)s"}


def phase_means(log: Path, first: int = 10, last: int = 99) -> dict[str, float]:
    """Mean seconds of each phase over iterations first..last of one log."""
    parts = ITERATION.split(log.read_text(errors="replace"))
    values: dict[str, list[float]] = defaultdict(list)
    for number, block in zip(parts[1::2], parts[2::2], strict=True):
        if first <= int(number) <= last:
            for name, pattern in FIELDS.items():
                if match := re.search(pattern, block):
                    values[name].append(float(match.group(1)))
    return {name: statistics.mean(v) for name, v in values.items() if v}


def main() -> int:
    """Print the table."""
    by_shape: dict[str, list[dict[str, float]]] = defaultdict(list)
    for log in sorted(Path(sys.argv[1]).glob("*.log")):
        if "rank1" in log.name:
            continue
        means = phase_means(log)
        if means:
            by_shape[re.sub(r"-r\d+.*", "", log.stem)].append(means)
            print(log.name, "  ".join(f"{k} {v * 1000:.1f} ms" for k, v in means.items()))
    for shape, runs in by_shape.items():
        print(f"{shape} (mean of {len(runs)}):",
              "  ".join(f"{k} {statistics.mean(r[k] for r in runs) * 1000:.0f} ms" for k in FIELDS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
