"""rsl_rl: flags, log folder, checkpoint names, console progress, policy loading and export."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_runner.libraries.base import Policy, copy_into, newest_run_dir, same_max_iterations

NAME = "rsl_rl"
AGENT_ENTRY_POINT = "rsl_rl_cfg_entry_point"
CHECKPOINT_PATTERNS = ("model_*.pt",)
CHECKPOINT_REGEX = r"model_(\d+)\.pt$"
# rsl_rl restores current_learning_iteration on load and runs max_iterations more: model_<it> numbers continue
RESUME_CONTINUES_COUNT = True
# a retried attempt continues from the latest staged model_<it>.pt for the iterations left (sync.ResumePoint)
resumes_by_iteration = True
exports_policy = True  # exported/policy.pt and policy.onnx (rsl_rl's export_policy_to_jit/onnx)

_ITERATION = re.compile(r"Learning iteration (\d+)/(\d+)")
_FIELDS = {
    "meanReward": re.compile(r"Mean reward:\s+(-?[\d.]+(?:e[-+]?\d+)?)"),
    "meanEpisodeLength": re.compile(r"Mean episode length:\s+(-?[\d.]+)"),
    "stepsPerSecond": re.compile(r"Steps per second:\s+(\d+)"),
}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def device_overrides(device: str) -> list[str]:
    """rsl_rl's agent defaults to cuda:0 whatever ``--device`` says, so pin it to the simulation's device."""
    return [f"agent.device={device}"]


def train_overrides(spec: Mapping[str, Any]) -> list[str]:
    """No extra overrides: rsl_rl logs every iteration and saves every ``save_interval`` and at the end."""
    return []


resume_max_iterations = same_max_iterations  # rsl_rl runs --max_iterations more after the loaded iteration


def stage_resume_v2(checkpoint: Path, cwd: Path) -> Path:
    """2.x finds a checkpoint only under ``logs/rsl_rl/<experiment>/<run>/``: copy it to ``resumed/checkpoint/``."""
    return copy_into(checkpoint, cwd / "logs" / NAME / "resumed" / "checkpoint")


def resume_args_v2(checkpoint: Path) -> tuple[list[str], list[str]]:
    """2.x resumes with ``--resume --load_run <run folder> --checkpoint <file>`` under the experiment's folder."""
    run_dir, experiment = checkpoint.parent, checkpoint.parent.parent
    return (["--resume", "--load_run", run_dir.name, "--checkpoint", checkpoint.name],
            [f"agent.experiment_name={experiment.name}"])


def find_run_dir(workdir: Path) -> Path | None:
    """Return the newest ``logs/rsl_rl/<experiment>/<timestamp>[_<run_name>]`` folder."""
    return newest_run_dir(workdir, NAME)


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from one console line of rsl_rl's logger; return True when an iteration's block ends.

    rsl_rl prints one block per iteration: a ``Learning iteration it/total`` header, the statistics, and an
    ``ETA:`` footer. Only progress is read from the console; metrics come from the TensorBoard events.
    """
    line = _ANSI.sub("", line)
    if match := _ITERATION.search(line):
        # rsl_rl counts from 0 and prints it/total; report completed iterations as 1-based
        state["iteration"] = int(match.group(1)) + 1
        state["maxIterations"] = int(match.group(2))
        return False
    for key, pattern in _FIELDS.items():
        if match := pattern.search(line):
            state[key] = float(match.group(1))
            return False
    return line.strip().startswith("ETA:") and "iteration" in state


def load_policy(env: Any, agent_cfg: Any, checkpoint: str) -> Policy:
    """Load ``checkpoint`` through rsl_rl's runner (as Isaac Lab's play_rsl_rl does); it can export too."""
    from isaaclab_rl.rsl_rl import (
        RslRlVecEnvWrapper,
        check_rsl_rl_version,
        create_rsl_rl_runner,
        handle_deprecated_rsl_rl_cfg,
    )

    agent_cfg = handle_deprecated_rsl_rl_cfg(agent_cfg, check_rsl_rl_version())
    wrapped = RslRlVecEnvWrapper(env, clip_actions=agent_cfg.clip_actions)
    runner = create_rsl_rl_runner(wrapped, agent_cfg)
    runner.load(checkpoint)
    policy = runner.get_inference_policy(device=wrapped.unwrapped.device)
    obs = wrapped.get_observations()

    def step() -> None:
        nonlocal obs
        obs, _, dones, _ = wrapped.step(policy(obs))
        policy.reset(dones)  # recurrent policies forget the finished episodes

    def export(folder: Path) -> list[Path]:
        runner.export_policy_to_jit(path=str(folder), filename="policy.pt")
        runner.export_policy_to_onnx(path=str(folder), filename="policy.onnx")
        return [folder / "policy.pt", folder / "policy.onnx"]

    return Policy(step, export)


def export_policy(checkpoint: Path, agent_cfg: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Rebuild the actor (rsl_rl's own model class) from the checkpoint and the agent config, and export it.

    The files are what rsl_rl's ``export_policy_to_jit``/``export_policy_to_onnx`` write (its ``as_jit`` and
    ``as_onnx`` wrappers of the same model), without an env: the observation size is the first layer's input
    (or the normalizer's), the action size follows from the last layer and the output distribution.
    """
    import torch
    from rsl_rl.utils import resolve_class
    from tensordict import TensorDict

    from isaaclab_runner.export import ExportError, linear_sizes, load_checkpoint, save_onnx, save_signature

    state = load_checkpoint(checkpoint).get("actor_state_dict")
    actor_cfg = agent_cfg.get("actor") or {}
    if not state or not actor_cfg.get("class_name"):
        raise ExportError(f"{checkpoint.name} or params/agent.yaml has no rsl_rl actor (actor_state_dict, actor:)")
    obs_dim, mlp_out = linear_sizes(state, "mlp.")
    if "obs_normalizer._mean" in state:
        obs_dim = int(state["obs_normalizer._mean"].shape[-1])
    elif any(k.startswith(("rnn.", "cnns.")) for k in state):
        obs_dim = linear_sizes(state)[0]
    model_class, model_cfg = resolve_class(dict(actor_cfg))

    def build(action_dim: int) -> Any:
        obs = TensorDict({"policy": torch.zeros(1, obs_dim)}, batch_size=[1])
        return model_class(obs, {"actor": ["policy"]}, "actor", action_dim, **model_cfg)

    model = build(action_dim := mlp_out)
    head = model.distribution.input_dim if getattr(model, "distribution", None) is not None else mlp_out
    if head != mlp_out:  # the head carries more than the mean (a state-dependent std): scale the action size
        model = build(action_dim := mlp_out * mlp_out // head)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ExportError(f"the actor of params/agent.yaml does not match {checkpoint.name}: {exc}") from exc
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    jit_model = model.as_jit().to("cpu")
    torch.jit.script(jit_model).save(str(out_dir / "policy.pt"))
    onnx_model = model.as_onnx(verbose=False).to("cpu").eval()
    save_onnx(onnx_model, *onnx_model.get_dummy_inputs(), out_dir / "policy.onnx")
    save_signature(obs_dim, action_dim, out_dir)
    return [out_dir / "policy.pt", out_dir / "policy.onnx"]
