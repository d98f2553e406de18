"""Scaling on one two-GPU machine: one GPU vs a single-node 2-GPU job vs a 2-node job, all through the runner.

    python bench/gpu/multigpu.py --out bench/results/gpu

The 2-node job is launched exactly as AWS Batch launches a multi-node parallel job: two runner processes,
each with the ``AWS_BATCH_JOB_*`` variables Batch sets (node 0 main, node 1 worker told the main node's
address), one GPU each through CUDA_VISIBLE_DEVICES, rendezvous on 127.0.0.1. numEnvs is per GPU
(16384), as in Isaac Lab's own multi-GPU training. Prints env-steps/s (mean Perf/total_fps over iterations
10-99, which rsl_rl sums over ranks) and the speed-ups, and checks that only node 0 staged checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_arguments, gpu_name, job_spec, mean_fps, package_example, run_logged, write_json  # noqa: E402


def runner_cmd(spec: Path, workdir: Path) -> list[str]:
    """The container's command, as the Batch job definition runs it."""
    return [sys.executable, "-m", "isaaclab_runner", "run", "--spec", str(spec), "--workdir", str(workdir)]


def main() -> int:
    """Measure and print the scaling figures."""
    parser = bench_arguments(__doc__)
    parser.add_argument("--skip-single", action="store_true", help="reuse no baseline: measure 2-GPU shapes only")
    args = parser.parse_args()
    out, scratch = args.out.resolve(), args.scratch
    package = package_example(scratch)
    results: dict[str, dict] = {}

    def single(name: str, job_id: str, gpus: int, visible: str) -> None:
        job = scratch / name
        spec = write_json(job / "spec.json", job_spec(job_id, job / "staging", package, args.num_envs,
                                                      args.iterations, gpusPerNode=gpus))
        code, secs = run_logged(runner_cmd(spec, job / "work"), out / "logs" / f"{name}.log", job,
                                env={"CUDA_VISIBLE_DEVICES": visible})
        fps = mean_fps(job / "staging" / "run") if code == 0 else float("nan")
        results[name] = {"exit": code, "wall_s": round(secs, 1), "fps": fps,
                         "checkpoints": sorted(p.name for p in (job / "staging" / "run").glob("model_*.pt"))}
        print(f"{name}: exit {code}, {secs:.0f} s, {fps:,.0f} env-steps/s", flush=True)

    if not args.skip_single:
        single("gpu1", "00000000-0000-4000-8000-0000000000a1", 1, "0")
    single("node1_gpu2", "00000000-0000-4000-8000-0000000000a2", 2, "0,1")

    # Two "nodes": the same spec on both, Batch's variables per node, one GPU each
    job = scratch / "nodes2"
    spec = write_json(job / "spec.json", job_spec("00000000-0000-4000-8000-0000000000a3", job / "staging", package,
                                                  args.num_envs, args.iterations, numNodes=2, gpusPerNode=1))
    base = {"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0", "ISAACLAB_MASTER_PORT": "29531"}
    nodes = {
        0: {**base, "AWS_BATCH_JOB_NODE_INDEX": "0", "ISAACLAB_MASTER_ADDR": "127.0.0.1", "CUDA_VISIBLE_DEVICES": "0"},
        1: {**base, "AWS_BATCH_JOB_NODE_INDEX": "1", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
            "CUDA_VISIBLE_DEVICES": "1"},
    }
    start = time.monotonic()
    procs = {}
    for rank, env in nodes.items():
        log = (out / "logs" / f"nodes2_rank{rank}.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        (job / f"node{rank}").mkdir(parents=True, exist_ok=True)
        procs[rank] = (subprocess.Popen(runner_cmd(spec, job / f"node{rank}" / "work"), cwd=job / f"node{rank}",
                                        env={**os.environ, **env}, stdout=log.open("w"), stderr=subprocess.STDOUT))
    codes = {rank: p.wait(timeout=900) for rank, p in procs.items()}
    secs = time.monotonic() - start
    fps = mean_fps(job / "staging" / "run") if all(c == 0 for c in codes.values()) else float("nan")
    staged = sorted(str(p.relative_to(job / "staging")) for p in (job / "staging").rglob("model_*.pt"))
    worker_ckpts = sorted(str(p) for p in (job / "node1").rglob("model_*.pt"))
    results["nodes2_gpu1"] = {"exit": codes, "wall_s": round(secs, 1), "fps": fps, "checkpoints": staged,
                              "worker_local_checkpoints": worker_ckpts}
    print(f"nodes2_gpu1: exits {codes}, {secs:.0f} s, {fps:,.0f} env-steps/s, staged {staged}", flush=True)

    summary = {"gpu": gpu_name(), "date": time.strftime("%Y-%m-%d"), "num_envs_per_gpu": args.num_envs,
               "iterations": args.iterations, "runs": results}
    if "gpu1" in results:
        base_fps = results["gpu1"]["fps"]
        summary["speedup_node1_gpu2"] = results["node1_gpu2"]["fps"] / base_fps
        summary["speedup_nodes2_gpu1"] = results["nodes2_gpu1"]["fps"] / base_fps
    write_json(out / "multigpu.json", summary)
    print(json.dumps(summary, indent=2))
    return 0 if all(r["exit"] in (0, {0: 0, 1: 0}) for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
