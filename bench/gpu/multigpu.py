"""Scaling on one two-GPU machine: one GPU vs a single-node 2-GPU job vs a 2-node job, under several settings.

    python bench/gpu/multigpu.py --reps 5 --out bench/results/gpu \\
        --setting default --setting fixed agent.algorithm.schedule=fixed

A *setting* is a name and the Hydra overrides it adds to every run (the job spec's ``overrides``, as a
deployment's ``isaaclab_overrides`` Variable sets them); without ``--setting`` there is one, ``default``, with
none. Every shape runs under every setting in each repetition, in alternation (gpu1/A, gpu1/B, node1_gpu2/A,
node1_gpu2/B, nodes2_gpu1/A, nodes2_gpu1/B; the next repetition starts with B), so drift of the shared host
hits all of them alike.

The 2-node job is launched exactly as AWS Batch launches a multi-node parallel job: two processes, each with
the ``AWS_BATCH_JOB_*`` variables Batch sets (node 0 main, node 1 worker told the main node's address), one GPU
each through CUDA_VISIBLE_DEVICES, rendezvous on 127.0.0.1. ``--num-envs`` is per GPU, as in Isaac Lab's own
multi-GPU training. env-steps/s is the mean Perf/total_fps over iterations ``--fps-from``..last (rsl_rl sums it
over ranks).

``--launch runner`` (the default) runs every job through the task runner, as Batch does (env package fetched
and pip-installed, task check, checkpoint sync, upload). ``--launch direct`` runs the very command the runner
would (``isaaclab_cli.train_command`` turned into this node's launch by ``launch.launch_command`` from the same
Batch variables) without the runner's per-job install and upload, which cost ~15 s a run and do not touch
Perf/total_fps (docs/performance.md: runner/bare 1.02); the env package must be installed once beforehand.

Learning, not only speed: each run also records Train/mean_reward at fixed numbers of env steps (the one-GPU
run's steps after ``--reward-iters`` iterations; a 2-GPU run gets there in half the iterations), interpolated
between iterations, plus the final reward and episode length, and rsl_rl's collection/learning time per
iteration from the console log.

Every run is appended to ``multigpu.json`` as it ends and a later call skips what is there, so a call cut short
(a device call has a time limit) keeps what it measured and the same command goes on. ``--stop-after S`` starts
no run that would not end within S seconds of the call's start (judged from the longest run of that shape so
far), so a time-limited call ends cleanly between runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    bench_arguments,
    gpu_name,
    job_spec,
    mean_fps,
    package_example,
    run_logged,
    scalars,
    write_json,
)
from phases import phase_means  # noqa: E402

SHAPES = ("gpu1", "node1_gpu2", "nodes2_gpu1")
WORLD = {"gpu1": 1, "node1_gpu2": 2, "nodes2_gpu1": 2}  # GPUs (ranks) per shape
# The export of policy.pt/onnx runs after training and is not part of Perf/total_fps; skipping it saves GPU time.
BENCH_ENV = {"ISAACLAB_RUNNER_EXPORT": "0", "PYTHONUNBUFFERED": "1"}
EXPECT_S = {"gpu1": 60.0, "node1_gpu2": 80.0, "nodes2_gpu1": 80.0}  # a run's length before one was measured
REWARD_TAG, LENGTH_TAG = "Train/mean_reward", "Train/mean_episode_length"
MAX_ATTEMPTS = 2  # a run that failed is tried once more by a later call, then left failed


def runner_cmd(spec: Path, workdir: Path) -> list[str]:
    """The container's command, as the Batch job definition runs it."""
    return [sys.executable, "-m", "isaaclab_runner", "run", "--spec", str(spec), "--workdir", str(workdir)]


def direct_cmd(spec: dict, gpus: int, env: dict[str, str], device: str) -> list[str]:
    """The launch the runner would run for ``spec`` on a node whose Batch variables are ``env``."""
    from isaaclab_runner import isaaclab_cli, launch
    from isaaclab_runner.libraries import get_library

    train = isaaclab_cli.train_command(spec, get_library(spec["rlLibrary"]), device)
    return launch.launch_command(train, gpus, launch.detect_node(env))


def nodes_env(name: str) -> dict[int, dict[str, str]]:
    """Per node: the variables Batch sets on the nodes of a 2-node parallel job, one GPU each (a port per run)."""
    base = {**BENCH_ENV, "AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
            "ISAACLAB_MASTER_PORT": str(29531 + zlib.crc32(name.encode()) % 2000)}
    return {
        0: {**base, "AWS_BATCH_JOB_NODE_INDEX": "0", "ISAACLAB_MASTER_ADDR": "127.0.0.1", "CUDA_VISIBLE_DEVICES": "0"},
        1: {**base, "AWS_BATCH_JOB_NODE_INDEX": "1", "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
            "CUDA_VISIBLE_DEVICES": "1"},
    }


def event_root(job: Path, launch_mode: str) -> Path:
    """Where rank 0's event files and params of a job end up."""
    if launch_mode == "runner":
        return job / "staging" / "run"
    return job / "node0" / "logs" if (job / "node0").is_dir() else job / "logs"


def learning_record(root: Path, num_envs: int, world: int, targets: list[int]) -> dict:
    """Reward at fixed env steps (interpolated between iterations), final reward and episode length."""
    rewards, lengths = scalars(root, REWARD_TAG), scalars(root, LENGTH_TAG)
    steps_per_env = None
    for agent_yaml in sorted(root.rglob("agent.yaml")):  # Isaac Lab's dump has python tags: read the one line
        if match := re.search(r"^num_steps_per_env: *(\d+)", agent_yaml.read_text(), re.MULTILINE):
            steps_per_env = int(match.group(1))
        break
    out: dict = {"num_steps_per_env": steps_per_env,
                 "reward_final": rewards[max(rewards)] if rewards else None,
                 "episode_length_final": lengths[max(lengths)] if lengths else None}
    if not rewards or not steps_per_env:
        return out
    per_iteration = num_envs * steps_per_env * world
    curve = sorted(((it + 1) * per_iteration, value) for it, value in rewards.items())
    out["env_steps_per_iteration"] = per_iteration
    out["env_steps_total"] = curve[-1][0]
    out["reward_at_env_steps"] = {str(t): interpolate(curve, t) for t in targets}
    return out


def interpolate(curve: list[tuple[int, float]], x: int) -> float | None:
    """Linear interpolation of (steps, value) points at ``x``; None outside the curve."""
    if not curve or x < curve[0][0] or x > curve[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return curve[-1][1]


class Bench:
    """One call's measurements; results accumulate in ``<out>/multigpu.json``."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = args.out.resolve()
        self.settings: dict[str, list[str]] = {s[0]: list(s[1:]) for s in (args.setting or [["default"]])}
        self.results_file = self.out / "multigpu.json"
        data = json.loads(self.results_file.read_text()) if self.results_file.exists() else {}
        self.runs: list[dict] = data.get("runs", [])
        self.warmup: dict | None = data.get("warmup")
        self.package = package_example(args.scratch) if args.launch == "runner" else None
        self.start = time.monotonic()
        last = args.fps_to if args.fps_to is not None else args.iterations - 1
        self.fps_window = (args.fps_from, last)
        self.targets = [args.num_envs * args.steps_per_env * k for k in (args.reward_iters or
                        sorted({max(1, args.iterations // 4), max(1, args.iterations // 2), args.iterations}))]

    # ---- one run -------------------------------------------------------------------------------------------
    def spec(self, job: Path, key: str, shape: str, overrides: list[str], iterations: int | None = None,
             num_envs: int | None = None) -> dict:
        extra: dict = {"overrides": overrides, "device": self.args.device}
        if shape == "node1_gpu2":
            extra["gpusPerNode"] = 2
        elif shape == "nodes2_gpu1":
            extra.update(numNodes=2, gpusPerNode=1)
        package = self.package or Path("unused.tar.gz")
        return job_spec(str(uuid.uuid5(uuid.NAMESPACE_URL, key)), job / "staging", package,
                        num_envs or self.args.num_envs, iterations or self.args.iterations, **extra)

    def commands(self, shape: str, job: Path, spec: dict) -> list[tuple[list[str], dict, Path, Path]]:
        """(command, extra env, cwd, log) per process of the run."""
        logs = self.out / "logs"
        name = job.name
        device = "cuda:0" if self.args.device in ("auto", "cuda") else self.args.device
        if shape == "nodes2_gpu1":
            per_node = nodes_env(name)
            procs = []
            for rank, env in per_node.items():
                cwd = job / f"node{rank}"
                if self.args.launch == "runner":
                    cmd = runner_cmd(job / "spec.json", cwd / "work")
                else:
                    cmd = direct_cmd(spec, 1, env, device)
                procs.append((cmd, env, cwd, logs / f"{name}-rank{rank}.log"))
            return procs
        gpus = WORLD[shape]
        env = {**BENCH_ENV, "CUDA_VISIBLE_DEVICES": "0,1" if gpus == 2 else "0"}
        if self.args.launch == "runner":
            cmd = runner_cmd(job / "spec.json", job / "work")
        else:
            cmd = direct_cmd(spec, gpus, {}, device)
        return [(cmd, env, job, logs / f"{name}.log")]

    def run_one(self, setting: str, shape: str, rep: int, iterations: int | None = None,
                num_envs: int | None = None) -> dict:
        """Run one shape under one setting; return its record (also written to the JSON by the caller)."""
        name = f"{setting}-{shape}-r{rep}"
        job = self.args.scratch / name
        if job.exists():  # a retried run starts clean (event files of an earlier try would mix in)
            subprocess.run(["rm", "-rf", str(job)], check=False)
        spec = self.spec(job, f"{self.args.num_envs}/{name}", shape, self.settings.get(setting, []), iterations,
                         num_envs)
        write_json(job / "spec.json", spec)
        procs = self.commands(shape, job, spec)
        if self.args.dry_run:
            for cmd, env, cwd, log in procs:
                print(f"[dry-run] {name}: cwd={cwd} env={env}\n  $ {' '.join(cmd)}  > {log}", flush=True)
            return {"exit": 0, "dry_run": True, "wall_s": 0.0, "fps": float("nan")}
        start = time.monotonic()
        if len(procs) == 1:
            cmd, env, cwd, log = procs[0]
            code, _ = run_logged(cmd, log, cwd, env=env, timeout=self.args.run_timeout)
            codes = {0: code}
        else:
            running = {}
            for rank, (cmd, env, cwd, log) in enumerate(procs):
                log.parent.mkdir(parents=True, exist_ok=True)
                cwd.mkdir(parents=True, exist_ok=True)
                with log.open("w") as f:
                    f.write("$ " + " ".join(cmd) + "\n")
                running[rank] = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=log.open("a"),
                                                 stderr=subprocess.STDOUT)
            codes = {}
            for rank, p in running.items():
                try:
                    codes[rank] = p.wait(timeout=self.args.run_timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    codes[rank] = -9
        secs = time.monotonic() - start
        root = event_root(job, self.args.launch)
        ok = all(c == 0 for c in codes.values())
        record: dict = {"exit": max(codes.values(), key=abs), "exits": codes, "wall_s": round(secs, 1),
                        "overrides": self.settings.get(setting, [])}
        try:
            record["fps"] = mean_fps(root, *self.fps_window) if ok else float("nan")
        except RuntimeError as exc:
            record.update(fps=float("nan"), error=str(exc))
        try:
            record.update(learning_record(root, num_envs or self.args.num_envs, WORLD[shape], self.targets))
        except Exception as exc:  # noqa: BLE001 - learning figures are best effort; the speed is the measure
            record["learning_error"] = f"{type(exc).__name__}: {exc}"
        rank0_log = procs[0][3]
        if rank0_log.exists():
            phases = phase_means(rank0_log, *self.fps_window)
            record["phases_ms"] = {k: round(v * 1000, 1) for k, v in phases.items()}
        record["checkpoints"] = sorted(str(p.relative_to(job)) for p in job.rglob("model_*.pt"))
        return record

    # ---- the plan ------------------------------------------------------------------------------------------
    def done(self, setting: str, shape: str, rep: int) -> bool:
        tries = [r for r in self.runs if r.get("setting", "default") == setting and r["shape"] == shape
                 and r["rep"] == rep]
        return any(r["exit"] == 0 for r in tries) or len(tries) >= MAX_ATTEMPTS

    def expected_s(self, shape: str) -> float:
        walls = [r["wall_s"] for r in self.runs if r["shape"] == shape and r["exit"] == 0]
        return max(walls) if walls else EXPECT_S[shape]

    def time_left(self) -> float:
        return self.args.stop_after - (time.monotonic() - self.start) if self.args.stop_after else math.inf

    def plan(self) -> list[tuple[str, str, int]]:
        names = list(self.settings)
        order = []
        for rep in range(self.args.first_rep, self.args.first_rep + self.args.reps):
            settings = names if rep % 2 == 0 else names[::-1]
            order += [(setting, shape, rep) for shape in self.args.shapes for setting in settings]
        return order

    def save(self) -> None:
        summary = {"gpu": gpu_name(), "date": time.strftime("%Y-%m-%d"), "launch": self.args.launch,
                   "num_envs_per_gpu": self.args.num_envs, "iterations": self.args.iterations,
                   "fps_window": list(self.fps_window), "reward_targets_env_steps": self.targets,
                   "settings": self.settings, **summarize(self.runs, list(self.settings)),
                   "warmup": self.warmup, "runs": self.runs}
        write_json(self.results_file, summary)

    def run(self) -> int:
        if self.args.warmup and not (self.warmup and self.warmup.get("exit") == 0):
            print("warm-up (compiles Warp's kernels once per machine) ...", flush=True)
            first = next(iter(self.settings))
            self.warmup = {"shape": "gpu1", "setting": first,
                           **self.run_one(first, "gpu1", -1, iterations=self.args.warmup_iterations)}
            print(f"warm-up: exit {self.warmup['exit']}, {self.warmup['wall_s']:.0f} s", flush=True)
            self.save()
        stopped = False
        for setting, shape, rep in self.plan():
            if self.done(setting, shape, rep):
                continue
            if self.expected_s(shape) + 5 > self.time_left():
                print(f"stopping before {setting}/{shape}/r{rep}: {self.time_left():.0f} s left of --stop-after, "
                      f"a {shape} run takes ~{self.expected_s(shape):.0f} s; run the same command again to go on",
                      flush=True)
                stopped = True
                break
            result = self.run_one(setting, shape, rep)
            self.runs.append({"setting": setting, "shape": shape, "rep": rep, **result})
            phases = result.get("phases_ms", {})
            print(f"r{rep} {setting:>10} {shape:>11}: exit {result['exit']}, {result['wall_s']:.0f} s, "
                  f"{result['fps']:,.0f} env-steps/s, collect {phases.get('collection', '?')} ms, "
                  f"learn {phases.get('learning', '?')} ms, reward@steps {result.get('reward_at_env_steps')}",
                  flush=True)
            if not self.args.dry_run:
                self.save()
        if not self.args.dry_run:
            self.save()
            summary = json.loads(self.results_file.read_text())
            print(json.dumps({k: v for k, v in summary.items() if k not in ("runs", "warmup")}, indent=1))
        left = [p for p in self.plan() if not self.done(*p)]
        print(f"{'STOPPED' if stopped else 'finished'}: {len(left)} run(s) of the plan left", flush=True)
        return 0 if all(r["exit"] == 0 for r in self.runs) else 1


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "per_rep": [round(v, 3) for v in values]}


def summarize(runs: list[dict], settings: list[str]) -> dict:
    """Per setting: per-shape medians, speed-ups (per-repetition ratios and their spread), learning figures.

    ``speedup_<shape>`` divides by the one-GPU run of the same setting and repetition (scaling);
    ``speedup_vs_base_gpu1_<shape>`` divides by the one-GPU run of the first setting (the baseline) in the same
    repetition: what a multi-GPU job with the setting gains over a one-GPU job without it.
    """
    ok = [r for r in runs if r["exit"] == 0 and r["fps"] == r["fps"]]
    base = settings[0] if settings else "default"
    base_gpu1 = {r["rep"]: r["fps"] for r in ok if r.get("setting", "default") == base and r["shape"] == "gpu1"}
    out: dict = {"summary": {}}
    for setting in settings:
        mine = [r for r in ok if r.get("setting", "default") == setting]
        fps = {s: [r["fps"] for r in mine if r["shape"] == s] for s in SHAPES}
        gpu1 = {r["rep"]: r["fps"] for r in mine if r["shape"] == "gpu1"}
        entry: dict = {"fps": fps, "median_fps": {s: statistics.median(v) for s, v in fps.items() if v}}
        for shape in SHAPES[1:]:
            paired = [r["fps"] / gpu1[r["rep"]] for r in mine if r["shape"] == shape and r["rep"] in gpu1]
            if paired:
                of_medians = entry["median_fps"][shape] / entry["median_fps"]["gpu1"]
                entry[f"speedup_{shape}"] = {**_spread(paired), "ratio_of_medians": of_medians}
            vs_base = [r["fps"] / base_gpu1[r["rep"]] for r in mine if r["shape"] == shape and r["rep"] in base_gpu1]
            if vs_base and setting != base:
                entry[f"speedup_vs_base_gpu1_{shape}"] = _spread(vs_base)
        learning: dict = {}
        for shape in SHAPES:
            shaped = [r for r in mine if r["shape"] == shape]
            at: dict[str, list[float]] = {}
            for r in shaped:
                for target, value in (r.get("reward_at_env_steps") or {}).items():
                    if value is not None:
                        at.setdefault(target, []).append(value)
            finals = [r["reward_final"] for r in shaped if r.get("reward_final") is not None]
            phases = {k: statistics.median(r["phases_ms"][k] for r in shaped if k in r.get("phases_ms", {}))
                      for k in ("collection", "learning", "iteration")
                      if any(k in r.get("phases_ms", {}) for r in shaped)}
            if at or finals or phases:
                learning[shape] = {"reward_at_env_steps": {t: _spread(v) for t, v in at.items()},
                                   "reward_final": _spread(finals) if finals else None,
                                   "phases_ms_median": phases}
        entry["learning"] = learning
        out["summary"][setting] = entry
    return out


def main() -> int:
    """Measure the shapes under each setting in alternation and print the scaling figures."""
    parser = bench_arguments(__doc__)
    parser.add_argument("--reps", type=int, default=5, help="repetitions of every shape under every setting")
    parser.add_argument("--first-rep", type=int, default=0, help="number of the first repetition")
    parser.add_argument("--shapes", nargs="+", choices=SHAPES, default=list(SHAPES))
    parser.add_argument("--setting", nargs="+", action="append", metavar=("NAME", "OVERRIDE"),
                        help="a setting to compare: its name, then its Hydra overrides (repeat the option)")
    parser.add_argument("--launch", choices=("runner", "direct"), default="runner")
    parser.add_argument("--device", default="auto", help="the spec's device; cpu only to smoke-test this script")
    parser.add_argument("--fps-from", type=int, default=10, help="first iteration of the env-steps/s mean")
    parser.add_argument("--fps-to", type=int, default=None, help="last iteration of the mean (default: the last)")
    parser.add_argument("--steps-per-env", type=int, default=16,
                        help="the agent's num_steps_per_env, for the reward targets (the example cartpole: 16)")
    parser.add_argument("--reward-iters", type=int, nargs="+",
                        help="reward targets, in one-GPU iterations (default: a quarter, half and all)")
    parser.add_argument("--warmup", action="store_true", help="first a one-GPU run that compiles Warp's kernels")
    parser.add_argument("--warmup-iterations", type=int, default=20)
    parser.add_argument("--stop-after", type=float, default=0,
                        help="start no run that would end later than this many seconds after the start (0: no limit)")
    parser.add_argument("--run-timeout", type=float, default=900)
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args()
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
