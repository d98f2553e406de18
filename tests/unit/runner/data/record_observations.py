"""Record observations of the example custom cartpole for the export tests (cartpole_observations.json).

Run once, in an environment where the example env package is installed (a runner job's venv), with Isaac Lab on
the CPU: ``OMP_NUM_THREADS=1 <job venv>/bin/python tests/unit/runner/data/record_observations.py``. The envs
are stepped with random actions from reset, so the file covers the states a policy meets early and late.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TASK = "Isaac-Custom-Cartpole-Direct"
OUT = Path(__file__).with_name("cartpole_observations.json")


def main() -> None:
    from isaaclab.app import add_launcher_args, launch_simulation

    parser = argparse.ArgumentParser()
    add_launcher_args(parser)
    args = parser.parse_args(["--device", "cpu"])
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401
    import torch
    from isaaclab.cli import load_external_tasks
    from isaaclab_tasks.utils import resolve_task_config

    load_external_tasks()
    env_cfg, _ = resolve_task_config(TASK, "rsl_rl_cfg_entry_point", play_mode=True, overrides=[])
    env_cfg.scene.num_envs, env_cfg.seed, env_cfg.sim.device = 16, 3, "cpu"
    with launch_simulation(env_cfg, args):
        env = gym.make(TASK, cfg=env_cfg)
        obs, _ = env.reset()
        rows: list[list[float]] = []
        gen = torch.Generator().manual_seed(0)
        for step in range(40):
            if step % 3 == 0:
                rows += obs["policy"].tolist()
            actions = torch.rand((16, env.unwrapped.single_action_space.shape[0]), generator=gen) * 2 - 1
            obs, *_ = env.step(actions)
        env.close()
    OUT.write_text(json.dumps({"task": TASK, "observations": [[round(v, 6) for v in r] for r in rows]}) + "\n")
    print(f"wrote {len(rows)} observations to {OUT}")


if __name__ == "__main__":
    main()
