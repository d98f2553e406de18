"""Runner overhead on one GPU: bare ``isaaclab train`` vs the same training through our task runner.

Run on a GPU machine with the Isaac Lab environment (see bench/gpu/README.md):

    python bench/gpu/overhead.py --reps 2 --out bench/results/gpu

Both sides train the example cartpole (16384 envs, 100 iterations, rsl_rl, kit-less Newton). The runner side
starts exactly as an AWS Batch job does: a job spec, a staging folder, the env package fetched and installed,
checkpoint sync on. Runs alternate (bare, runner, bare, runner...) after a warm-up that compiles Warp's
kernels, so drift hits both sides. Prints env-steps/s (mean Perf/total_fps over iterations 10-99) and job wall
time, both as runner/bare ratios, with the runner's timings breakdown (job-result.json's ``timings``).

The runner's jobs run as a deployed stack's do: with a cache location (``cacheUri``; the stack's
``isaaclab_cache_uri``), which the warm-up job, the first job with the package, filled (its editable build, its
task list, Warp's kernels). Every command's log lines carry the seconds since it started (``[  12.34] ...``).

``--fresh-host`` adds the fresh-host comparison: a job on a host with an empty Warp cache and an empty cache
location (it compiles every kernel and saves them), then a job on a second fresh host (empty Warp cache again)
that restores them from the cache location; each one's job start -> first iteration.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import TASK, bench_arguments, gpu_name, job_spec, mean_fps, package_example, run_logged, write_json  # noqa: E402


def main() -> int:
    """Measure and print the overhead ratio."""
    parser = bench_arguments(__doc__)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--device", default="cuda:0", help="cpu only to smoke-test this script")
    parser.add_argument("--fresh-host", action="store_true", help="also the cold vs cache-restored start")
    parser.add_argument("--skip-overhead", action="store_true", help="only the fresh-host comparison (no warm-up)")
    parser.add_argument("--fresh-iterations", type=int, default=None,
                        help="iterations of the fresh-host jobs (measured up to the first; default: --iterations)")
    args = parser.parse_args()
    agent_device = [f"agent.device={args.device}"]
    out, scratch = args.out.resolve(), args.scratch
    package = package_example(scratch)
    isaaclab = str(Path(sys.executable).parent / "isaaclab")
    bare_args = ["train", "--rl_library", "rsl_rl", "--task", TASK, "--num_envs", str(args.num_envs),
                 "--max_iterations", str(args.iterations), "--seed", "42", "--device", args.device, *agent_device]

    # Warm-up: installs the package (as the bare side needs it) and compiles Warp's CUDA kernels once
    cache = scratch / "cache-location"
    if args.skip_overhead:  # the fresh-host jobs bring their own caches
        summary = {"gpu": gpu_name(), "date": time.strftime("%Y-%m-%d"), "num_envs": args.num_envs,
                   "iterations": args.fresh_iterations or args.iterations, "freshHost": {}}
        summary["freshHost"] = fresh_host(args, package, scratch, out)
        write_json(out / "overhead.json", summary)
        return 0  # the deployment's cache location (S3 on Batch)
    code = _warm_up(args, package, scratch, out, cache)
    if code != 0:
        return code

    results: dict[str, list[dict]] = {"bare": [], "runner": []}
    for rep in range(0 if args.skip_overhead else args.reps):
        cwd = scratch / f"bare{rep}"
        code, secs = run_logged([isaaclab, *bare_args], out / "logs" / f"bare{rep}.log", cwd, stamp=True)
        fps = mean_fps(cwd / "logs") if code == 0 else float("nan")
        results["bare"].append({"exit": code, "wall_s": round(secs, 1), "fps": fps})
        print(f"bare   #{rep}: exit {code}, {secs:.0f} s, {fps:,.0f} env-steps/s", flush=True)
        results["runner"].append(_runner_rep(args, rep, package, scratch, out, cache))
        write_json(out / "overhead.json", {"partial": True, "runs": results})  # a call cut short keeps these

    summary: dict = {"gpu": gpu_name(), "date": time.strftime("%Y-%m-%d"), "num_envs": args.num_envs,
                     "iterations": args.iterations, "runs": results}
    if results["bare"]:
        summary.update(_ratios(results))
    if args.fresh_host:
        summary["freshHost"] = fresh_host(args, package, scratch, out)
    write_json(out / "overhead.json", summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if results["bare"]:
        print(f"runner_over_bare_ratio: {summary['ratio']:.4f}")
        print(f"runner_over_bare_wall_ratio: {summary['wall_ratio']:.4f}")
    return 0


def _warm_up(args: argparse.Namespace, package: Path, scratch: Path, out: Path, cache: Path) -> int:
    """One small runner job: installs the package (as the bare side needs it), compiles Warp's CUDA kernels once
    and fills the cache location; its exit code."""
    warm = job_spec("00000000-0000-4000-8000-000000000000", scratch / "warm" / "staging", package, 1024, 3,
                    device=args.device, cacheUri=str(cache))
    code, secs = run_logged([sys.executable, "-m", "isaaclab_runner", "run", "--spec",
                             str(write_json(scratch / "warm" / "spec.json", warm)), "--workdir",
                             str(scratch / "warm" / "work")], out / "logs" / "warmup.log", scratch / "warm",
                            stamp=True)
    print(f"warm-up: exit {code} in {secs:.0f} s", flush=True)
    return code


def _runner_rep(args: argparse.Namespace, rep: int, package: Path, scratch: Path, out: Path,
                cache: Path) -> dict[str, Any]:
    """The same training through the runner, as a Batch job: its exit, wall time, env-steps/s, staged checkpoints
    and timings."""
    job = scratch / f"job{rep}"
    spec = job_spec(f"00000000-0000-4000-8000-00000000000{rep + 1}", job / "staging", package, args.num_envs,
                    args.iterations, device=args.device, cacheUri=str(cache))
    code, secs = run_logged([sys.executable, "-m", "isaaclab_runner", "run", "--spec",
                             str(write_json(job / "spec.json", spec)), "--workdir", str(job / "work")],
                            out / "logs" / f"runner{rep}.log", job, stamp=True)
    fps = mean_fps(job / "staging" / "run") if code == 0 else float("nan")
    staged = sorted(p.name for p in (job / "staging").rglob("model_*.pt"))
    timings = _timings(job / "staging")
    print(f"runner #{rep}: exit {code}, {secs:.0f} s, {fps:,.0f} env-steps/s, staged {staged}", flush=True)
    print(f"runner #{rep} timings: {_line(timings)}", flush=True)
    return {"exit": code, "wall_s": round(secs, 1), "fps": fps, "checkpoints": staged, "timings": timings}


def _ratios(results: dict[str, list[dict]]) -> dict[str, Any]:
    """Both sides' mean env-steps/s and wall time, their runner/bare ratios, the runner's mean phases."""
    bare = statistics.mean(r["fps"] for r in results["bare"])
    ours = statistics.mean(r["fps"] for r in results["runner"])
    bare_wall = statistics.mean(r["wall_s"] for r in results["bare"])
    ours_wall = statistics.mean(r["wall_s"] for r in results["runner"])
    phases = {k: round(statistics.mean(float(r["timings"].get(k, 0.0)) for r in results["runner"]), 3)
              for k in results["runner"][0]["timings"] if k != "attempts"}
    return {"bare_fps": bare, "runner_fps": ours, "ratio": ours / bare, "bare_wall_s": bare_wall,
            "runner_wall_s": ours_wall, "wall_ratio": ours_wall / bare_wall, "runner_timings_mean": phases}


# job-result.json's phases before the first iteration (the job's start-up on a host)
START_PHASES = ("runnerStart", "fetch", "install", "kernelCacheRestore", "isaacLabStart")


def _timings(staging: Path) -> dict:
    result = staging / "result.json"
    return json.loads(result.read_text()).get("timings", {}) if result.is_file() else {}


def _line(timings: dict) -> str:
    return " | ".join(f"{k} {v:.1f}s" for k, v in timings.items() if isinstance(v, int | float))


def fresh_host(args, package: Path, scratch: Path, out: Path) -> dict:
    """A cold host (empty Warp cache, empty cache location), then a second fresh host restoring from it."""
    shutil.rmtree(scratch / "fresh", ignore_errors=True)  # a rerun starts cold again
    cache = scratch / "fresh" / "cache-location"
    rows = {}
    for name in ("cold", "restored"):
        job = scratch / "fresh" / name
        spec = job_spec(f"00000000-0000-4000-8000-0000000001{len(rows)}0", job / "staging", package, args.num_envs,
                        args.fresh_iterations or args.iterations, device=args.device, cacheUri=str(cache))
        env = {"WARP_CACHE_PATH": str(job / "warp-cache")}  # this "host"'s own, empty Warp kernel cache
        code, secs = run_logged([sys.executable, "-m", "isaaclab_runner", "run", "--spec",
                                 str(write_json(job / "spec.json", spec)), "--workdir", str(job / "work")],
                                out / "logs" / f"fresh-{name}.log", job, env=env, stamp=True)
        timings = _timings(job / "staging")
        start = sum(float(timings.get(k, 0.0)) for k in START_PHASES)
        rows[name] = {"exit": code, "wall_s": round(secs, 1), "start_to_first_iteration_s": round(start, 1),
                      "timings": timings}
        print(f"fresh host {name}: exit {code}, start -> first iteration {start:.1f} s; {_line(timings)}", flush=True)
    print(f"fresh_host_start_cold_s: {rows['cold']['start_to_first_iteration_s']:.1f}")
    print(f"fresh_host_start_restored_s: {rows['restored']['start_to_first_iteration_s']:.1f}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
