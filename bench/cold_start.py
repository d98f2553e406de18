#!/usr/bin/env python
"""Benchmark: a job on a fresh host (empty Warp kernel cache) without and with the cache that travels, on this CPU.

Each run is one runner job (``python -m isaaclab_runner run``, the example env as a tar.gz, rsl_rl, 16 envs,
``--iterations`` iterations, export off) with its own empty ``WARP_CACHE_PATH``, i.e. a fresh host:

* cold: an empty cache location (``cacheUri``): Warp compiles every kernel; the job saves them, and the built
  env-package wheel, to the cache location;
* restored: a second fresh host, the same cache location: the runner restores the kernels (while the package
  installs, from the cached wheel);
* image: the image-build alternative, a host whose Warp cache is already warm (as if baked into the image) and no
  cache location.

For each: wall time, job start → first training iteration, Isaac Lab start → first iteration, the install. The last
lines are ``first_iteration_cold_s``, ``first_iteration_restored_s`` and ``cold_vs_restored`` (the ratio).

Run: ``flock /tmp/heavy.lock .venvs/isaaclab/bin/python bench/cold_start.py [--reps 1] [--out bench/results/cpu]``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_jobs import FIRST_ITERATION, Job, bench_arguments, bench_folders, run_job, write_summary  # noqa: E402


def measure(job: Job, library: str) -> dict[str, float | None | str]:
    """The start-up figures of one job, from its timed output."""
    first = job.first(FIRST_ITERATION[library])
    isaaclab = job.first("[runner] Running: ")
    installed = job.first("[runner] Installed ")
    cache = next((line.split("[runner] ", 1)[1] for _, line in job.lines if "[runner] kernel cache:" in line), "")
    wheel = "cached wheel" if job.first("Using the cached build") is not None else (
        "built and cached" if job.first("Building: ") is not None else "pip install of the project")
    return {"wall_s": round(job.wall_s, 2), "first_iteration_s": round(first, 2) if first else None,
            "isaaclab_start_to_first_iteration_s": round(first - isaaclab, 2) if first and isaaclab else None,
            "install_s": round(installed, 2) if installed else None, "package": wheel, "kernel_cache": cache}


def main() -> int:
    parser = bench_arguments(__doc__, reps=1)
    parser.add_argument("--iterations", type=int, default=2)
    args = parser.parse_args()
    root, out, package = bench_folders(args, "cold-start")
    runs: dict[str, list[dict]] = {"cold": [], "restored": [], "image": []}
    for rep in range(args.reps):
        cache = root / f"cache-{rep}"  # the deployment's cache location (s3:// in production)
        hosts = {name: root / f"host-{name}-{rep}" / "warp" for name in runs}
        plan = [("cold", hosts["cold"], str(cache)), ("restored", hosts["restored"], str(cache)),
                ("image", hosts["cold"], None)]  # the image run reuses the cold host's now warm cache
        for name, warp, cache_uri in plan:
            env = {"WARP_CACHE_PATH": str(warp), "ISAACLAB_RUNNER_EXPORT": "0"}
            fields = {"cacheUri": cache_uri} if cache_uri else {}
            job = run_job(root, f"{name}-{rep}", "rsl_rl", package, args.iterations, env=env, **fields)
            (out / f"{name}-{rep}.log").write_text((root / f"{name}-{rep}.log").read_text())
            if job.code != 0:
                print((root / f"{name}-{rep}.log").read_text()[-3000:])
                return 1
            runs[name].append(measure(job, "rsl_rl"))
            print(f"rep {rep} {name:8s} {json.dumps(runs[name][-1])}", flush=True)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    summary = {"reps": args.reps, "iterations": args.iterations, "runs": runs}
    for key in ("wall_s", "first_iteration_s", "isaaclab_start_to_first_iteration_s"):
        summary[key] = {name: median(name, key) for name in runs}
    cold, restored = median("cold", "first_iteration_s"), median("restored", "first_iteration_s")
    summary.update(first_iteration_cold_s=cold, first_iteration_restored_s=restored,
                   cold_vs_restored=round(cold / restored, 2))
    print(f"{'':28s} {'cold':>8s} {'restored':>9s} {'image':>8s}")
    for key in ("wall_s", "first_iteration_s", "isaaclab_start_to_first_iteration_s"):
        print(f"{key:28s} " + " ".join(f"{summary[key][n]:>8.2f}" for n in runs))
    write_summary(out, summary, {"first_iteration_cold_s": cold, "first_iteration_restored_s": restored,
                                 "cold_vs_restored": cold / restored})
    return 0


if __name__ == "__main__":
    sys.exit(main())
