"""Scaling on one two-GPU machine: one GPU vs a single-node 2-GPU job vs a 2-node job, all through the runner.

    python bench/gpu/multigpu.py --reps 5 --out bench/results/gpu

The 2-node job is launched exactly as AWS Batch launches a multi-node parallel job: two runner processes,
each with the ``AWS_BATCH_JOB_*`` variables Batch sets (node 0 main, node 1 worker told the main node's
address), one GPU each through CUDA_VISIBLE_DEVICES, rendezvous on 127.0.0.1. numEnvs is per GPU
(16384), as in Isaac Lab's own multi-GPU training. env-steps/s is the mean Perf/total_fps over iterations
10-99 (rsl_rl sums it over ranks).

The one-GPU baseline of a single run swings by ±15% on a shared host, so the shapes run in alternation
(gpu1, node1_gpu2, nodes2_gpu1, gpu1, ...) and the speed-ups are medians: of each repetition's ratio to the
one-GPU run of the same repetition, and the ratio of the per-shape medians. Every run is appended to
``multigpu.json`` as it ends, so a run cut short (a device call has a time limit) keeps what it measured and
the next call goes on with ``--first-rep``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_arguments, gpu_name, job_spec, mean_fps, package_example, run_logged, write_json  # noqa: E402

SHAPES = ("gpu1", "node1_gpu2", "nodes2_gpu1")
# The export of policy.pt/onnx runs after training and is not part of Perf/total_fps; skipping it saves GPU time.
BENCH_ENV = {"ISAACLAB_RUNNER_EXPORT": "0"}


def runner_cmd(spec: Path, workdir: Path) -> list[str]:
    """The container's command, as the Batch job definition runs it."""
    return [sys.executable, "-m", "isaaclab_runner", "run", "--spec", str(spec), "--workdir", str(workdir)]


def run_single(name: str, rep: int, gpus: int, visible: str, args: argparse.Namespace, package: Path,
               out: Path) -> dict:
    """One node: the runner with ``gpus`` GPUs (``gpusPerNode``) visible."""
    job = args.scratch / f"{name}-r{rep}"
    spec = write_json(job / "spec.json", job_spec(f"00000000-0000-4000-8000-{rep:04d}0000000{gpus}", job / "staging",
                                                  package, args.num_envs, args.iterations, gpusPerNode=gpus))
    code, secs = run_logged(runner_cmd(spec, job / "work"), out / "logs" / f"{name}-r{rep}.log", job,
                            env={**BENCH_ENV, "CUDA_VISIBLE_DEVICES": visible})
    fps = mean_fps(job / "staging" / "run") if code == 0 else float("nan")
    return {"exit": code, "wall_s": round(secs, 1), "fps": fps,
            "checkpoints": sorted(p.name for p in (job / "staging").rglob("model_*.pt"))}


def run_two_nodes(rep: int, args: argparse.Namespace, package: Path, out: Path) -> dict:
    """Two runner processes with the variables Batch sets on the nodes of a 2-node parallel job."""
    job = args.scratch / f"nodes2_gpu1-r{rep}"
    spec = write_json(job / "spec.json", job_spec(f"00000000-0000-4000-8000-{rep:04d}00000003", job / "staging",
                                                  package, args.num_envs, args.iterations, numNodes=2, gpusPerNode=1))
    base = {**BENCH_ENV, "AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
            "ISAACLAB_MASTER_PORT": str(29531 + rep)}
    nodes = {
        0: {**base, "AWS_BATCH_JOB_NODE_INDEX": "0", "ISAACLAB_MASTER_ADDR": "127.0.0.1", "CUDA_VISIBLE_DEVICES": "0"},
        1: {**base, "AWS_BATCH_JOB_NODE_INDEX": "1", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
            "CUDA_VISIBLE_DEVICES": "1"},
    }
    start = time.monotonic()
    procs = {}
    for rank, env in nodes.items():
        log = out / "logs" / f"nodes2_gpu1-r{rep}-rank{rank}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        (job / f"node{rank}").mkdir(parents=True, exist_ok=True)
        procs[rank] = subprocess.Popen(runner_cmd(spec, job / f"node{rank}" / "work"), cwd=job / f"node{rank}",
                                       env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT)
    codes = {rank: p.wait(timeout=900) for rank, p in procs.items()}
    secs = time.monotonic() - start
    fps = mean_fps(job / "staging" / "run") if all(c == 0 for c in codes.values()) else float("nan")
    return {"exit": max(codes.values()), "exits": codes, "wall_s": round(secs, 1), "fps": fps,
            "checkpoints": sorted(str(p.relative_to(job / "staging")) for p in (job / "staging").rglob("model_*.pt")),
            "worker_local_checkpoints": sorted(str(p) for p in (job / "node1").rglob("model_*.pt"))}


def summarize(runs: list[dict]) -> dict:
    """Per-shape medians and the speed-ups: median of per-repetition ratios, ratio of medians."""
    ok = [r for r in runs if r["exit"] == 0 and r["fps"] == r["fps"]]
    by_shape = {s: [r["fps"] for r in ok if r["shape"] == s] for s in SHAPES}
    base_by_rep = {r["rep"]: r["fps"] for r in ok if r["shape"] == "gpu1"}
    out: dict = {"fps": by_shape, "median_fps": {s: statistics.median(v) for s, v in by_shape.items() if v}}
    for shape in SHAPES[1:]:
        paired = [r["fps"] / base_by_rep[r["rep"]] for r in ok if r["shape"] == shape and r["rep"] in base_by_rep]
        if paired:
            out[f"speedup_{shape}"] = {"per_rep": [round(x, 3) for x in paired],
                                       "median_of_ratios": statistics.median(paired),
                                       "ratio_of_medians": out["median_fps"][shape] / out["median_fps"]["gpu1"]}
    return out


def main() -> int:
    """Measure the shapes in alternation and print the scaling figures."""
    parser = bench_arguments(__doc__)
    parser.add_argument("--reps", type=int, default=5, help="repetitions of every shape")
    parser.add_argument("--first-rep", type=int, default=0, help="go on from this repetition (results accumulate)")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    args = parser.parse_args()
    out = args.out.resolve()
    package = package_example(args.scratch)
    results_file = out / "multigpu.json"
    runs: list[dict] = json.loads(results_file.read_text())["runs"] if results_file.exists() else []
    for rep in range(args.first_rep, args.first_rep + args.reps):
        for shape in args.shapes:
            if shape == "gpu1":
                result = run_single(shape, rep, 1, "0", args, package, out)
            elif shape == "node1_gpu2":
                result = run_single(shape, rep, 2, "0,1", args, package, out)
            else:
                result = run_two_nodes(rep, args, package, out)
            runs.append({"shape": shape, "rep": rep, **result})
            print(f"rep {rep} {shape}: exit {result['exit']}, {result['wall_s']:.0f} s, "
                  f"{result['fps']:,.0f} env-steps/s, staged {result['checkpoints']}", flush=True)
            summary = {"gpu": gpu_name(), "date": time.strftime("%Y-%m-%d"), "num_envs_per_gpu": args.num_envs,
                       "iterations": args.iterations, **summarize(runs), "runs": runs}
            write_json(results_file, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
