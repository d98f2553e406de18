#!/usr/bin/env python
"""Benchmark: exporting a trained policy through a second Isaac Lab process (the runner before) vs rebuilding the
actor from the checkpoint without a simulator (the runner now), on this CPU, same checkpoint, same run.

One runner job trains the example env (rsl_rl, 16 envs, 3 iterations, export off) in a job venv of its own.
Then, ``--reps`` times, alternating:

* old: what the runner ran after training: ``<job python> -m isaaclab_runner.evaluate --num_steps 0 --num_envs 1
  --export`` (Isaac Lab starts a simulation, builds the env and rsl_rl's runner, exports policy.pt/.onnx);
* new: ``<job python> -m isaaclab_runner.export`` (torch, the checkpoint, params/agent.yaml; no simulator), a fresh
  process too, so interpreter start and imports count on both sides (in the runner it runs on a thread beside the
  run folder's upload, so the job waits for even less).

Both exports' policy.pt are compared on the recorded observations of tests/unit/runner/data. skrl and rl_games
(which the old path could not export) are timed on the new path from the test checkpoints. The last lines are
``export_old_s``, ``export_new_s`` (medians, wall) and ``export_speedup`` (old / new).

Run: ``flock /tmp/heavy.lock .venvs/isaaclab/bin/python bench/export.py [--reps 3] [--out bench/results/cpu]``.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_jobs import REPO, bench_arguments, bench_folders, run_job, timed, write_summary  # noqa: E402

DATA = REPO / "tests" / "unit" / "runner" / "data"
OTHER_LIBRARIES = {
    "skrl": (DATA / "runs" / "skrl", DATA / "runs" / "skrl" / "checkpoints" / "agent_96.pt"),
    "rl_games": (DATA / "runs" / "rl_games", DATA / "runs" / "rl_games" / "nn" /
                 "last_custom_cartpole_ep_3_rew__-4.591545_.pth"),
}


def _policy_difference(old_dir: Path, new_dir: Path) -> tuple[int, float]:
    """The number of recorded observations and the largest difference of the two exports' actions on them."""
    import torch

    obs = torch.tensor(json.loads((DATA / "cartpole_observations.json").read_text())["observations"])
    with torch.inference_mode():
        old_actions = torch.jit.load(str(old_dir / "exported" / "policy.pt"))(obs)
        new_actions = torch.jit.load(str(new_dir / "exported" / "policy.pt"))(obs)
    return len(obs), float((old_actions - new_actions).abs().max())


def _other_libraries(python: Path, root: Path, out: Path, env: dict[str, str]) -> dict[str, float | None]:
    """Seconds of the new export of skrl's and rl_games' checkpoints (None: it failed)."""
    others = {}
    for name, (other_run, other_ckpt) in OTHER_LIBRARIES.items():
        cmd = [str(python), "-m", "isaaclab_runner.export", "--rl_library", name, "--checkpoint", str(other_ckpt),
               "--run_dir", str(other_run), "--output_dir", str(root / f"new-{name}")]
        code, secs = timed(cmd, root, out / f"new-{name}.log", env)
        others[name] = round(secs, 2) if code == 0 else None
    return others


def main() -> int:
    args = bench_arguments(__doc__, reps=3).parse_args()
    from isaaclab_runner import isaaclab_cli
    from isaaclab_runner.jobspec import JobSpec
    from isaaclab_runner.libraries import get_library
    from isaaclab_runner.libraries.base import latest_checkpoint

    root, out, package = bench_folders(args, "export")
    job = run_job(root, "train", "rsl_rl", package, iterations=3, env={"ISAACLAB_RUNNER_EXPORT": "0"})
    if job.code != 0:
        print((root / "train.log").read_text()[-3000:])
        return 1
    library = get_library("rsl_rl")
    run_dir = library.find_run_dir(job.workdir / "isaaclab")
    assert run_dir is not None
    checkpoint = latest_checkpoint(library, run_dir)
    python = job.workdir / "venv" / "bin" / "python"  # the job's venv: it has the env package
    spec = JobSpec.from_dict(json.loads((root / "train" / "spec.json").read_text()))
    env = isaaclab_cli.child_env("cpu")
    print(f"run: {run_dir.name}, checkpoint: {checkpoint.name}, reps: {args.reps}", flush=True)

    old_s, new_s, inside_s = [], [], []
    for rep in range(args.reps):
        old_dir, new_dir = root / f"old-{rep}", root / f"new-{rep}"
        old_cmd = isaaclab_cli.policy_command(spec, library, "cpu", checkpoint, old_dir, num_steps=0, num_envs=1,
                                              export=True, python=python)
        code, secs = timed(old_cmd, run_dir.parent, out / f"old-{rep}.log", env)
        assert code == 0, (out / f"old-{rep}.log").read_text()[-3000:]
        old_s.append(secs)
        new_cmd = [str(python), "-m", "isaaclab_runner.export", "--rl_library", "rsl_rl", "--checkpoint",
                   str(checkpoint), "--run_dir", str(run_dir), "--output_dir", str(new_dir / "exported")]
        code, secs = timed(new_cmd, run_dir.parent, out / f"new-{rep}.log", env)
        assert code == 0, (out / f"new-{rep}.log").read_text()[-3000:]
        new_s.append(secs)
        inside_s.append(float(re.search(r"in ([\d.]+)s", (out / f"new-{rep}.log").read_text()).group(1)))
        print(f"rep {rep}: old {old_s[-1]:.2f}s  new {new_s[-1]:.2f}s (export itself {inside_s[-1]:.2f}s)",
              flush=True)

    observations, diff = _policy_difference(root / "old-0", root / "new-0")
    others = _other_libraries(python, root, out, env)

    old, new = statistics.median(old_s), statistics.median(new_s)
    summary = {"reps": args.reps, "old_s": [round(s, 2) for s in old_s], "new_s": [round(s, 2) for s in new_s],
               "new_export_itself_s": [round(s, 2) for s in inside_s], "old_vs_new_policy_pt_max_diff": diff,
               "new_other_libraries_s": others, "export_old_s": round(old, 2), "export_new_s": round(new, 2),
               "export_speedup": round(old / new, 2)}
    print(f"old path (second Isaac Lab process): {', '.join(f'{s:.2f}' for s in old_s)} s")
    print(f"new path (no simulator):             {', '.join(f'{s:.2f}' for s in new_s)} s "
          f"(the export itself {', '.join(f'{s:.2f}' for s in inside_s)} s)")
    print(f"old and new policy.pt on {observations} recorded observations: max |difference| {diff:.2e}")
    print(f"new path, skrl and rl_games: {others}")
    write_summary(out, summary, {"export_old_s": old, "export_new_s": new, "export_speedup": old / new})
    return 0


if __name__ == "__main__":
    sys.exit(main())
