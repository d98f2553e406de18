"""rsl_rl: progress read from its console block, command line built from a spec."""

from __future__ import annotations

from pathlib import Path

from isaaclab_runner import isaaclab_cli
from isaaclab_runner.libraries import get_library

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "rsl_rl_iteration_block.txt"


def test_progress_from_a_real_iteration_block() -> None:
    """The fixture is one block printed by rsl_rl 5.5.1 (iteration 3 of 5) in the example training."""
    lib = get_library("rsl_rl")
    state: dict = {}
    ended = [lib.parse_progress(line, state) for line in FIXTURE.read_text().splitlines(keepends=True)]
    assert ended.count(True) == 1 and ended[-1] is True
    assert state["iteration"] == 4 and state["maxIterations"] == 5
    assert isinstance(state["meanReward"], float) and isinstance(state["meanEpisodeLength"], float)
    assert state["stepsPerSecond"] > 0


def test_train_command(monkeypatch) -> None:
    monkeypatch.setattr(isaaclab_cli, "isaaclab_executable", lambda python=None: "isaaclab")
    spec = {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 64, "maxIterations": 150, "seed": 7,
            "overrides": ["agent.save_interval=25"]}
    cmd = isaaclab_cli.train_command(spec, get_library("rsl_rl"), "cpu")
    assert cmd == ["isaaclab", "train", "--rl_library", "rsl_rl", "--task", "Isaac-Custom-Cartpole-Direct",
                   "--num_envs", "64", "--max_iterations", "150", "--seed", "7", "--device", "cpu",
                   "agent.device=cpu", "agent.save_interval=25"]


def test_cpu_runs_get_one_openmp_thread(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert isaaclab_cli.child_env("cpu")["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in isaaclab_cli.child_env("cuda:0")
