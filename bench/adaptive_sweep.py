#!/usr/bin/env python
"""Benchmark (issue 28 item 2): the same 4-candidate sweep as successive halving and as a plain grid, side by side.

Both run through the real DAG (``dag.test``) on the local backend in one private pipeline home, rsl_rl on the CPU,
the example env (``Isaac-Custom-Cartpole-Direct``), one seed, a grid of 4 learning rates:

* **halving**: ``sweep.search = {"method": "halving", "rounds": 2, "keep": 0.5}``: 4 trials × maxIterations/2,
  then the 2 best resumed for maxIterations/2 more;
* **grid**: the same sweep without ``search``: 4 trials × maxIterations.

Printed: each sweep's env steps (summary.json's ``envSteps``), wall time and best setting (highest last mean
reward), the grid's last mean reward per setting, halving's ranking per round, the ratio ``grid / halving`` of env
steps and whether both picked the same best setting. The JSON goes to ``--out`` (``adaptive_sweep.json``) when
given.

Run: ``flock /tmp/heavy.lock .venvs/airflow/bin/python bench/adaptive_sweep.py [--max-iterations 4]
[--num-envs 16] [--rates R1 R2 R3 R4]
[--override KEY=VALUE] [--out bench/results/cpu-2026-12-07]``. Exit code 0 when both sweeps succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for extra in ("plugins", "tools", "tests"):
    sys.path.insert(0, str(REPO / extra))

TASK = "Isaac-Custom-Cartpole-Direct"
RATES = [0.01, 0.003, 0.001, 0.0001]
# 128 steps per iteration: the untrained cartpole ends an episode in iteration 0, so Train/mean_reward is logged
OVERRIDES = ["agent.num_steps_per_env=128", "agent.save_interval=50"]


def run_sweep(home: Path, search: dict[str, Any] | None, max_iterations: int, num_envs: int,
              rates: list[float]) -> dict[str, Any]:
    """One sweep through ``dag.test``; its state, wall time, env steps, best setting and rounds."""
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_tools.cli import load_dag

    sweep: dict[str, Any] = {"grid": {"agent.algorithm.learning_rate": rates}}
    if search:
        sweep["search"] = search
    conf = {"trainingConfig": {"task": TASK, "numEnvs": num_envs, "maxIterations": max_iterations, "seed": 1},
            "inputS3AssetFilePath": f"file://{home}/assets/custom_cartpole/",
            "outputS3Path": f"file://{home}/outputs", "sweep": sweep}
    started = time.monotonic()
    run = load_dag().test(run_conf=conf)
    wall = time.monotonic() - started
    out = home / "outputs" / job_uuid("isaac-lab-training", run.run_id)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    best = summary.get("best") or {}
    return {"state": str(run.state), "wallS": round(wall, 1), "envSteps": summary.get("envSteps"),
            "jobs": summary.get("trials"), "bestSetting": best.get("setting"),
            "bestFinalMeanReward": (best.get("finalMeanReward") or {}).get("mean"),
            "rounds": summary.get("rounds"),
            "finalBySetting": {x["setting"]: x["finalMeanReward"]["mean"] for x in summary.get("settings") or []
                               if x["finalMeanReward"]["mean"] is not None}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-iterations", type=int, default=4)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--out", type=Path, help="folder for adaptive_sweep.json")
    parser.add_argument("--rates", type=float, nargs=4, default=RATES, help="the grid's 4 learning rates")
    parser.add_argument("--override", action="append", default=[],
                        help="one more deployment override for every job, e.g. agent.algorithm.schedule=fixed "
                             "(rsl_rl's adaptive schedule moves the learning rate after every update)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="adaptive-sweep-"))
    # a private Airflow home, set before Airflow is imported (as tests/conftest.py does)
    os.environ.update({"AIRFLOW_HOME": str(tmp / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                       "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    from pipeline_env import dag_home

    (tmp / "home").mkdir()
    with dag_home(tmp / "home", {"overrides": json.dumps([*OVERRIDES, *args.override])}) as home:
        halving = run_sweep(home, {"method": "halving", "rounds": 2, "keep": 0.5}, args.max_iterations,
                            args.num_envs, args.rates)
        grid = run_sweep(home, None, args.max_iterations, args.num_envs, args.rates)
    result = {"maxIterations": args.max_iterations, "numEnvs": args.num_envs, "rates": args.rates,
              "overrides": [*OVERRIDES, *args.override], "halving": halving,
              "grid": grid}
    ok = halving["state"] == grid["state"] == "success" and halving["envSteps"] and grid["envSteps"]
    if ok:
        result["envStepsRatioGridOverHalving"] = round(grid["envSteps"] / halving["envSteps"], 3)
        result["sameBestSetting"] = halving["bestSetting"] == grid["bestSetting"]
    for name in ("halving", "grid"):
        r = result[name]
        print(f"{name:8s} state={r['state']} jobs={r['jobs']} env_steps={r['envSteps']} wall={r['wallS']} s "
              f"best={r['bestSetting']} (last mean reward {r['bestFinalMeanReward']})")
    print("grid's last mean reward per setting (maxIterations each): " + ", ".join(
        f"{k.split('=')[-1]}={v:.3f}" for k, v in sorted(grid["finalBySetting"].items(), key=lambda kv: -kv[1])))
    if halving.get("rounds"):
        for rnd in halving["rounds"]:
            print(f"  round {rnd['round']} ({rnd['iterations']} iterations): "
                  + ", ".join(f"{x['trialId']}={x['value']:.3f}" for x in rnd["ranking"])
                  + (f" -> kept {rnd['survivors']}" if rnd["survivors"] else ""))
    if ok:
        print(f"env steps grid/halving: {result['envStepsRatioGridOverHalving']}; "
              f"same best setting: {result['sameBestSetting']}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "adaptive_sweep.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
