"""Export a checkpoint in this process and compare the exported files with the checkpoint's own policy.

Run in the Isaac Lab venv (torch and the RL libraries): ``python export_check.py LIB CHECKPOINT RUN_DIR OUT OBS``;
prints one JSON line: the largest difference between the library's own deterministic actions and those of
``policy.pt`` (TorchScript) and ``policy.onnx`` (ONNX's reference evaluator) on the observations in ``OBS`` (and
on 64 wider random ones), the simulator modules (Isaac Lab, Warp, Newton) the export imported and the processes it
started (none of either expected).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

SIMULATOR = ("isaaclab", "isaaclab_tasks", "isaacsim", "omni", "warp", "newton", "mujoco_warp", "pxr")


def reference_actions(lib: str, checkpoint: Path, agent_cfg: dict[str, Any], obs: torch.Tensor) -> torch.Tensor:
    """The library's own inference path on ``checkpoint``, as Isaac Lab's play uses it (no export code)."""
    if lib == "rsl_rl":
        from rsl_rl.runners import OnPolicyRunner
        from tensordict import TensorDict

        class Env:  # rsl_rl's VecEnv surface that the runner reads when it builds the models
            num_envs, device, cfg, max_episode_length = 1, "cpu", {}, 100
            num_actions = [len(v) for k, v in torch.load(checkpoint, weights_only=False)["actor_state_dict"].items()
                           if k.startswith("mlp.") and k.endswith("bias")][-1]

            def get_observations(self) -> TensorDict:
                return TensorDict({"policy": torch.zeros(1, obs.shape[1])}, batch_size=[1])

        runner = OnPolicyRunner(Env(), copy.deepcopy(agent_cfg), log_dir=None, device="cpu")
        runner.load(str(checkpoint))
        policy = runner.get_inference_policy(device="cpu")
        with torch.inference_mode():
            return policy(TensorDict({"policy": obs}, batch_size=[len(obs)])).clone()
    if lib == "skrl":
        from isaaclab_runner.libraries.skrl import _runner_on_spaces

        ckpt = torch.load(checkpoint, weights_only=False)
        cfg = copy.deepcopy(agent_cfg)
        cfg["agent"]["experiment"].update(write_interval=0, checkpoint_interval=0)
        agent = _runner_on_spaces(cfg, obs.shape[1], ckpt["policy"]["log_std_parameter"].shape[-1]).agent
        agent.load(str(checkpoint))
        agent.enable_training_mode(False, apply_to_models=True)
        with torch.inference_mode():
            _, outputs = agent.act(obs, None, timestep=0, timesteps=0)
        return outputs["mean_actions"].clone()
    if lib == "rl_games":
        from isaaclab_runner.libraries.rl_games import _player

        player = _player(checkpoint, agent_cfg, obs.shape[1])
        clip = agent_cfg["params"]["env"].get("clip_observations", float("inf"))
        with torch.inference_mode():  # the player gets what Isaac Lab's env wrapper hands it: clipped observations
            return player.get_action(torch.clamp(obs, -clip, clip), is_deterministic=True).clone()
    raise ValueError(lib)


def main(lib: str, checkpoint: str, run_dir: str, out: str, obs_file: str) -> None:
    from isaaclab_runner.export import export_run, load_agent_config
    from isaaclab_runner.libraries import get_library

    before = {m for m in sys.modules if m.split(".")[0] in SIMULATOR}
    started: list[str] = []
    popen = subprocess.Popen.__init__

    def record(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        started.append(str(args))
        popen(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = record  # type: ignore[method-assign]
    try:
        paths = export_run(get_library(lib), Path(run_dir), Path(checkpoint), Path(out))
    finally:
        subprocess.Popen.__init__ = popen  # type: ignore[method-assign]
    simulator = sorted({m for m in sys.modules if m.split(".")[0] in SIMULATOR} - before)
    obs = torch.tensor(json.loads(Path(obs_file).read_text())["observations"], dtype=torch.float32)
    obs = torch.cat([obs, 3 * torch.randn(64, obs.shape[1], generator=torch.Generator().manual_seed(1))])
    expected = reference_actions(lib, Path(checkpoint), load_agent_config(Path(run_dir) / "params/agent.yaml"), obs)
    jit = torch.jit.load(str(paths[0]))
    with torch.inference_mode():
        got_jit = jit(obs)
    from onnx.reference import ReferenceEvaluator

    onnx = ReferenceEvaluator(str(paths[1]))
    got_onnx = np.concatenate([onnx.run(None, {"obs": row[None].numpy()})[0] for row in obs])
    print(json.dumps({
        "observations": len(obs), "action_shape": list(expected.shape),
        "jit_max_diff": float((got_jit - expected).abs().max()),
        "onnx_max_diff": float(np.abs(got_onnx - expected.numpy()).max()),
        "action_range": [float(expected.min()), float(expected.max())],
        "simulator_modules": simulator, "processes": started, "files": [p.name for p in paths],
    }))


if __name__ == "__main__":
    main(*sys.argv[1:6])
