"""Checkpoint auto-discovery over an asset that has lived through several runs (real files, real listing)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from isaaclab_pipeline.discovery import discover
from isaaclab_pipeline.resolve import ResolveError, discover_checkpoint
from isaaclab_pipeline.storage import LocalStorage


def _touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def _asset(root: Path) -> Path:
    """Two published runs (the newer interrupted once), an export, a hand-uploaded policy, another library's."""
    old = root / "11111111-old"
    _touch(old / "checkpoints" / "model_5000.pt", 1000)
    _touch(old / "manifest.json", 1001)
    new = root / "22222222-new"
    _touch(new / "checkpoints" / "attempt-1" / "model_50.pt", 1500)
    _touch(new / "checkpoints" / "attempt-1" / "model_900.pt", 1600)  # higher, but an attempt's copy
    _touch(new / "checkpoints" / "model_50.pt", 1900)
    best = _touch(new / "checkpoints" / "model_300.pt", 1950)
    _touch(new / "exported" / "policy.pt", 2100)  # newest file of all: a TorchScript export
    _touch(new / "manifest.json", 2000)
    _touch(root / "33333333-skrl" / "checkpoints" / "agent_100.pt", 3000)  # newest, but skrl's
    return best


def test_the_newest_run_s_highest_final_checkpoint_is_chosen_and_everything_else_is_skipped(tmp_path: Path) -> None:
    best = _asset(tmp_path)
    found = discover(LocalStorage().list(str(tmp_path)), "rsl_rl")
    assert found.uri == str(best)
    assert "newest run" in found.reason and "manifest.json" in found.reason
    skipped = {Path(u).relative_to(tmp_path).as_posix(): why for u, why in found.skipped.items()}
    assert skipped["22222222-new/exported/policy.pt"].startswith("an exported policy")
    assert skipped["22222222-new/checkpoints/attempt-1/model_900.pt"].startswith("an earlier attempt's copy")
    assert skipped["33333333-skrl/checkpoints/agent_100.pt"].startswith("not a rsl_rl training checkpoint")
    assert skipped["11111111-old/checkpoints/model_5000.pt"].startswith("an older run")
    assert skipped["22222222-new/checkpoints/model_50.pt"] == "a lower iteration of the same run"


def test_skrl_and_rl_games_count_only_their_own_names(tmp_path: Path) -> None:
    _asset(tmp_path)
    _touch(tmp_path / "44-rlg" / "nn" / "last_cartpole_ep_200_rew_4.9.pth", 500)
    best = _touch(tmp_path / "44-rlg" / "nn" / "last_cartpole_ep_300_rew_4.1.pth", 400)
    objects = LocalStorage().list(str(tmp_path))
    assert discover(objects, "skrl").uri.endswith("33333333-skrl/checkpoints/agent_100.pt")
    assert discover(objects, "rl_games").uri == str(best)  # epoch 300 beats 200 (not the reward's digits)


def test_only_attempt_copies_still_count_when_the_run_has_no_final_checkpoint(tmp_path: Path) -> None:
    only = _touch(tmp_path / "55" / "checkpoints" / "attempt-2" / "model_40.pt", 100)
    assert discover(LocalStorage().list(str(tmp_path)), "rsl_rl").uri == str(only)


def test_nothing_that_fits_lists_what_was_found_and_why_it_was_skipped(tmp_path: Path) -> None:
    _touch(tmp_path / "66" / "exported" / "policy.pt", 100)
    _touch(tmp_path / "66" / "checkpoints" / "best_agent.pt", 100)
    with pytest.raises(ResolveError) as err:
        discover_checkpoint(LocalStorage().list(str(tmp_path)), "rsl_rl")
    text = str(err.value)
    assert text.startswith("trainingConfig.checkpointPath: not set, and auto-discovery found no rsl_rl")
    assert "66/exported/policy.pt: an exported policy" in text
    assert "66/checkpoints/best_agent.pt: not a rsl_rl training checkpoint name" in text
