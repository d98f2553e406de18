"""Episode accounting of evaluate.py: exact counts, unbiased per-env quotas, statistics, progress lines."""

from __future__ import annotations

import math

import pytest
from isaaclab_runner.evaluate import EpisodeRecorder, episode_quotas, parse_progress, summarize


@pytest.mark.parametrize(("episodes", "envs", "quotas"), [
    (6, 4, [2, 2, 1, 1]), (3, 8, [1, 1, 1, 0, 0, 0, 0, 0]), (100, 100, [1] * 100), (10000, 3, [3334, 3333, 3333]),
])
def test_quotas_sum_to_the_episodes_asked(episodes: int, envs: int, quotas: list[int]) -> None:
    assert episode_quotas(episodes, envs) == quotas
    assert sum(quotas) == episodes


def test_recorder_counts_each_env_up_to_its_quota_only() -> None:
    # env 0 ends an episode every 2 steps (short, failing), env 1 every 4: the first 3 finished episodes would be
    # env 0's three short ones; quotas [2, 1] keep env 1's long episode in the sample
    rec = EpisodeRecorder(2, episode_quotas(3, 2))
    for step in range(1, 9):
        rec.record([1.0, 0.5], [step % 2 == 0, step % 4 == 0])
        if rec.done:
            break
    assert rec.done and step == 4
    assert [(e["env"], e["return"], e["length"]) for e in rec.episodes] == [(0, 2.0, 2), (0, 2.0, 2), (1, 2.0, 4)]
    assert [e["episode"] for e in rec.episodes] == [1, 2, 3]


def test_play_recorder_keeps_every_finished_episode_and_success_flags() -> None:
    rec = EpisodeRecorder(2)
    rec.record([1.0, 1.0], [True, False], [True, False])
    rec.record([1.0, 1.0], [True, True], [False, True])
    assert not rec.done
    assert [(e["env"], e["length"], e["success"]) for e in rec.episodes] == [(0, 1, True), (0, 1, False),
                                                                           (1, 2, True)]


def test_summary_statistics() -> None:
    eps = [{"return": r, "length": n, "success": s} for r, n, s in [(1.0, 10, True), (3.0, 30, False),
                                                                     (2.0, 20, None)]]
    out = summarize(eps)
    assert out["episodes"] == 3
    assert out["return"] == {"mean": 2.0, "std": pytest.approx(math.sqrt(2 / 3)), "min": 1.0, "max": 3.0}
    assert out["length"]["mean"] == 20.0 and out["length"]["max"] == 30.0
    assert out["successRate"] == 0.5  # over the episodes that reported one
    assert summarize([{"return": 1.0, "length": 1, "success": None}])["successRate"] is None


def test_progress_lines_for_the_runner() -> None:
    state: dict = {}
    assert parse_progress("[evaluate] episodes 4/6 after 120 steps", state)
    assert (state["episodes"], state["numEpisodes"]) == (4, 6)
    assert parse_progress("[evaluate] episodes 7/- after 300 steps", state) and state["episodes"] == 7
    assert not parse_progress("Learning iteration 1/3", state)
