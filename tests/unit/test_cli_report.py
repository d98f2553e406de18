"""The closing report of `make run`/`make demo`: headline metrics, the balance check, the last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from isaaclab_tools.cli import episode_step_limit, report

ENV_PARAMS = """\
decimation: 2
episode_length_s: 7.0
sim:
  dt: 0.008333333333333333
  physics: !!python/object:isaaclab.sim.PhysxCfg {}
observation_space: !!python/tuple [4]
"""


def test_step_limit_from_isaac_lab_env_params(tmp_path: Path) -> None:
    (tmp_path / "env-params.txt").write_text(ENV_PARAMS)
    assert episode_step_limit(tmp_path / "env-params.txt") == 420
    assert episode_step_limit(tmp_path / "missing.txt") is None


def test_training_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "env-params.txt").write_text(ENV_PARAMS)
    (tmp_path / "summary.json").write_text(json.dumps({"tags": {
        "Train/mean_reward": {"last": 6.895, "last_step": 149},
        "Train/mean_episode_length": {"last": 400.0, "last_step": 149},
    }}))
    report(str(tmp_path), started=0)
    lines = capsys.readouterr().out.splitlines()
    assert "Train/mean_reward at the last iteration (149): 6.895" in lines
    assert "episode step limit: 420; last mean episode length is 95% of it (balances)" in lines
    assert lines[-1] == f"outputs: {tmp_path}"


def test_report_survives_non_finite_and_evaluation_summaries(tmp_path: Path, capsys) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({
        "episodes": 50, "return": {"mean": 6.95, "std": 0.04}, "length": {"mean": 420.0}, "successRate": None,
        "tags": {"Train/mean_reward": {"last": None, "last_step": 3}}}))
    report(str(tmp_path), started=0)
    out = capsys.readouterr().out
    assert "evaluation: 50 episodes, return mean 6.950 (std 0.040), length mean 420.0" in out
    assert "Train/mean_reward at the last iteration" not in out
