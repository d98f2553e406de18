"""Evaluate or play a checkpoint on Isaac Lab's Python API: exactly N complete episodes, or a bounded run.

Isaac Lab 3 has no evaluate mode (``isaaclab play`` loops until Ctrl+C; ``isaaclab benchmark play`` counts
steps, not episodes), so this module builds one from the same pieces as Isaac Lab's play backends
(``isaaclab_rl/entrypoints/backends/play_<lib>.py``): ``resolve_task_config`` → ``launch_simulation`` →
``create_isaaclab_env`` → the library's env wrapper and policy loader (``libraries/<lib>.py``: ``load_policy``).
Episodes are counted on the environment itself (``reward_buf``, ``reset_terminated``, ``reset_time_outs`` of the
unwrapped Isaac Lab env), the same for every library, never by reading console output.

Every env gets a quota of episodes (``numEpisodes`` spread over ``numEnvs``) and only its first quota episodes
count; stopping at the first N finished episodes would favour short (failed) episodes.

Run as ``python -m isaaclab_runner.evaluate --rl_library L --task T --checkpoint P --output_dir D
(--num_episodes K | --num_steps S) [--export] [--video --video_length L --viz newton_gl] [overrides...]``.
It writes into ``D``:

    events.out.tfevents.*             Eval/episode_return, Eval/episode_length[, Eval/success] per episode
    evaluation/summary.json           mean, std, min, max of return and length; success rate when reported
    evaluation/evaluation-config.json what was evaluated (task, library, checkpoint, envs, episodes, seed)
    evaluation/episodes.csv           one row per episode: episode, env, return, length, success
    videos/<mode>/*.mp4               with --video
    exported/policy.pt, policy.onnx   with --export (libraries with ``exports_policy``)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from isaaclab_runner.libraries import SUPPORTED, get_library
from isaaclab_runner.libraries.base import Policy, RLLibrary

_PROGRESS = re.compile(r"\[evaluate\] episodes (\d+)/(\d+|-)")

EVALUATION_DIR = "evaluation"
SUMMARY_NAME = "summary.json"
CONFIG_NAME = "evaluation-config.json"
EPISODES_NAME = "episodes.csv"


def episode_quotas(num_episodes: int, num_envs: int) -> list[int]:
    """Spread ``num_episodes`` over ``num_envs`` envs as evenly as possible (the first envs take the remainder).

    :param num_episodes: complete episodes wanted in total.
    :param num_envs: parallel environments.
    :return: Episodes each env must complete; they sum to ``num_episodes``.
    """
    base, extra = divmod(num_episodes, num_envs)
    return [base + (1 if i < extra else 0) for i in range(num_envs)]


@dataclass
class EpisodeRecorder:
    """Accumulates per-env returns and lengths and keeps the episodes that count toward the quotas.

    :param quotas: episodes each env must complete (``None``: every finished episode counts, as in play mode).
    :param num_envs: parallel environments.
    """

    num_envs: int
    quotas: list[int] | None = None
    episodes: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._returns = [0.0] * self.num_envs
        self._lengths = [0] * self.num_envs
        self._counted = [0] * self.num_envs

    @property
    def done(self) -> bool:
        """True when every env has completed its quota."""
        return self.quotas is not None and all(c >= q for c, q in zip(self._counted, self.quotas, strict=True))

    def record(self, rewards: list[float], dones: list[bool], successes: list[bool] | None = None) -> None:
        """Add one step of every env; close the episodes of the envs that are done."""
        for env_id, (reward, finished) in enumerate(zip(rewards, dones, strict=True)):
            self._returns[env_id] += reward
            self._lengths[env_id] += 1
            if not finished:
                continue
            if self.quotas is None or self._counted[env_id] < self.quotas[env_id]:
                self._counted[env_id] += 1
                self.episodes.append({
                    "episode": len(self.episodes) + 1,
                    "env": env_id,
                    "return": self._returns[env_id],
                    "length": self._lengths[env_id],
                    "success": None if successes is None else bool(successes[env_id]),
                })
            self._returns[env_id], self._lengths[env_id] = 0.0, 0


def parse_progress(line: str, state: dict[str, Any]) -> bool:
    """Update ``state`` from this module's ``[evaluate] episodes k/N`` lines (read by the runner)."""
    match = _PROGRESS.search(line)
    if not match:
        return False
    state["episodes"] = int(match.group(1))
    if match.group(2) != "-":
        state["numEpisodes"] = int(match.group(2))
    return True


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Return mean, std (population), min and max of return and length, and the success rate when reported."""
    out: dict[str, Any] = {"episodes": len(episodes)}
    for key in ("return", "length"):
        values = [float(e[key]) for e in episodes]
        if not values:
            out[key] = None
            continue
        mean = sum(values) / len(values)
        out[key] = {"mean": mean, "std": math.sqrt(sum((v - mean) ** 2 for v in values) / len(values)),
                    "min": min(values), "max": max(values)}
    reported = [e["success"] for e in episodes if e["success"] is not None]
    out["successRate"] = sum(reported) / len(reported) if reported else None
    return out


def write_results(out_dir: Path, episodes: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """Write the TensorBoard events and ``evaluation/{summary.json, evaluation-config.json, episodes.csv}``."""
    from torch.utils.tensorboard import SummaryWriter

    summary = summarize(episodes)
    writer = SummaryWriter(log_dir=str(out_dir))
    for e in episodes:  # one TensorBoard step per episode, in completion order
        writer.add_scalar("Eval/episode_return", e["return"], e["episode"])
        writer.add_scalar("Eval/episode_length", e["length"], e["episode"])
        if e["success"] is not None:
            writer.add_scalar("Eval/success", float(e["success"]), e["episode"])
    writer.close()
    folder = out_dir / EVALUATION_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SUMMARY_NAME).write_text(json.dumps({**summary, "mode": config["mode"]}, indent=2) + "\n")
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    with (folder / EPISODES_NAME).open("w", newline="") as f:
        rows = csv.DictWriter(f, fieldnames=["episode", "env", "return", "length", "success"])
        rows.writeheader()
        rows.writerows(episodes)
    return summary


"""
The episode loop.
"""


def _success_term(unwrapped: Any) -> Callable[[], Any] | None:
    """Per-env success flags when the task reports them (a ``success`` termination term), else None."""
    manager = getattr(unwrapped, "termination_manager", None)
    names = getattr(manager, "active_terms", None) or []
    name = next((n for n in names if "success" in n.lower()), None)
    return (lambda: manager.get_term(name)) if name else None


def run_loop(policy: Policy, unwrapped: Any, recorder: EpisodeRecorder, max_steps: int) -> int:
    """Step until the recorder's quotas are met (or ``max_steps`` in play mode); return the steps taken.

    :raises RuntimeError: if the quotas are not met within ``max_steps`` (episodes that never end).
    """
    import torch

    success = _success_term(unwrapped)
    target = "-" if recorder.quotas is None else str(sum(recorder.quotas))
    steps = reported = 0
    with torch.inference_mode():
        while steps < max_steps and not recorder.done:
            policy.step()
            steps += 1
            dones = (unwrapped.reset_terminated | unwrapped.reset_time_outs).tolist()
            flags = success().tolist() if success is not None else None
            recorder.record(unwrapped.reward_buf.reshape(-1).tolist(), dones, flags)
            if len(recorder.episodes) != reported:  # progress for the runner (one line per finished episode)
                reported = len(recorder.episodes)
                print(f"[evaluate] episodes {reported}/{target} after {steps} steps", flush=True)
    if recorder.quotas is not None and not recorder.done:
        raise RuntimeError(f"only {len(recorder.episodes)} of {sum(recorder.quotas)} episodes finished in "
                           f"{max_steps} steps; does the task end its episodes (episode_length_s)?")
    return steps


def _as_dict(agent_cfg: Any) -> dict[str, Any]:
    """The agent config as the plain dict Isaac Lab dumps to params/agent.yaml (skrl's and rl_games' are dicts)."""
    return agent_cfg.to_dict() if hasattr(agent_cfg, "to_dict") else agent_cfg


def _parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    from isaaclab.app import add_launcher_args
    from isaaclab_rl.entrypoints.common import add_common_play_args
    from isaaclab_tasks.utils import setup_preset_cli

    parser = argparse.ArgumentParser(prog="isaaclab_runner.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_play_args(parser, agent_default=None, agent_help="Agent config entry point (default: the library's).")
    parser.add_argument("--rl_library", required=True, choices=SUPPORTED)
    parser.add_argument("--checkpoint", required=True, help="checkpoint file of the library")
    parser.add_argument("--output_dir", required=True, type=Path)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--num_episodes", type=int, help="evaluate: complete episodes to run")
    budget.add_argument("--num_steps", type=int, help="play: env steps to run (0: only load and export)")
    parser.add_argument("--export", action="store_true", help="export the policy to <output_dir>/exported/")
    add_launcher_args(parser)
    return setup_preset_cli(parser, argv)


def _episode_budget(args: argparse.Namespace, mode: str, unwrapped: Any, env_cfg: Any) -> tuple[EpisodeRecorder, int]:
    """The recorder and the step limit: every env's quota of episodes (evaluate) or ``--num_steps`` (play)."""
    from isaaclab_rl.entrypoints.common import video_playback_steps

    num_envs = int(unwrapped.num_envs)
    if mode == "evaluate":
        recorder = EpisodeRecorder(num_envs, episode_quotas(args.num_episodes, num_envs))
        # every env's quota of full-length episodes, plus one episode of slack for the one under way
        return recorder, int(unwrapped.max_episode_length) * (max(recorder.quotas) + 1) + 1
    max_steps = max(args.num_steps, video_playback_steps(args, env_cfg) or 0) if args.num_steps else 0
    return EpisodeRecorder(num_envs), max_steps


def _export_policy(args: argparse.Namespace, library: RLLibrary, policy: Policy, agent_cfg: Any,
                   out_dir: Path) -> list[str]:
    """Export the policy to ``<out_dir>/exported/``; return the files written."""
    # the library's runner exports (rsl_rl), else its exporter rebuilds the actor (export.py)
    export = policy.export or (lambda folder: library.export_policy(
        Path(args.checkpoint).resolve(), _as_dict(agent_cfg), folder))
    exported = [str(p) for p in export(out_dir / "exported")]
    print(f"[evaluate] exported {', '.join(exported)}", flush=True)
    return exported


def main(argv: list[str] | None = None) -> int:
    """Evaluate or play one checkpoint; return 0 on success."""
    argv = sys.argv[1:] if argv is None else argv
    args, hydra_args = _parse_args(argv)
    import isaaclab_tasks  # noqa: F401  registers the built-in tasks
    from isaaclab.app import launch_simulation
    from isaaclab.cli import load_external_tasks
    from isaaclab.envs import DirectMARLEnvCfg
    from isaaclab_rl.entrypoints.common import (
        apply_env_overrides,
        apply_video_recording,
        close_env,
        create_isaaclab_env,
        enable_cameras_for_video,
        pre_launch_video_config,
    )
    from isaaclab_tasks.utils import resolve_task_config

    load_external_tasks()  # the env package's tasks, through its isaaclab.tasks entry point
    library = get_library(args.rl_library)
    mode = "evaluate" if args.num_episodes is not None else "play"
    out_dir: Path = args.output_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    enable_cameras_for_video(args)
    started = time.monotonic()

    env_cfg, agent_cfg = resolve_task_config(args.task, args.agent or library.AGENT_ENTRY_POINT, play_mode=True,
                                             overrides=hydra_args)
    pre_launch_video_config(env_cfg, args)
    with launch_simulation(env_cfg, args), contextlib.ExitStack() as cleanup:
        apply_env_overrides(args, env_cfg)
        if args.seed is not None:
            env_cfg.seed = args.seed
        env_cfg.log_dir = str(out_dir)
        apply_video_recording(env_cfg, str(out_dir), args, subdir=mode)
        env = create_isaaclab_env(args.task, env_cfg, args,
                                  convert_marl_to_single_agent=isinstance(env_cfg, DirectMARLEnvCfg))
        cleanup.callback(lambda: close_env(env))
        unwrapped = env.unwrapped
        policy = library.load_policy(env, agent_cfg, str(Path(args.checkpoint).resolve()))
        num_envs = int(unwrapped.num_envs)
        recorder, max_steps = _episode_budget(args, mode, unwrapped, env_cfg)
        steps = run_loop(policy, unwrapped, recorder, max_steps)
        # after the episodes: skrl's runner, rebuilt for the export, reseeds torch
        exported = _export_policy(args, library, policy, agent_cfg, out_dir) if args.export else []
        if mode == "play" and not args.num_steps:
            return 0  # export only
        config = {"mode": mode, "task": args.task, "rlLibrary": library.NAME, "checkpoint": args.checkpoint,
                  "numEnvs": num_envs, "numEpisodes": args.num_episodes, "numSteps": steps, "seed": env_cfg.seed,
                  "device": str(unwrapped.device), "video": bool(args.video), "exported": exported,
                  "overrides": hydra_args, "wallTimeS": round(time.monotonic() - started, 2)}
        summary = write_results(out_dir, recorder.episodes, config)
        ret = summary["return"] or {}
        print(f"[evaluate] {mode}: {summary['episodes']} episodes in {steps} steps; return mean "
              f"{ret.get('mean', float('nan')):.3f} std {ret.get('std', float('nan')):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
