"""Warm-start (trainingConfig.init): a real rsl_rl checkpoint's weights kept, its optimizer state dropped and its
iteration count at 0; the Isaac Lab venv loads it with rsl_rl's own PPO loader as `isaaclab train --checkpoint` does.
The long path (a real training resumed and warm-started from the registry) is tests/journeys/test_registry.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from pipeline_env import ISAACLAB_PYTHON

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
CHECKPOINTS = {"rsl_rl": HERE / "data" / "runs" / "rsl_rl" / "model_2.pt",
               "rl_games": HERE / "data" / "runs" / "rl_games" / "nn" / "last_custom_cartpole_ep_3_rew__-4.591545_.pth"}

CHECK = r'''
import json, sys, torch
from pathlib import Path
from isaaclab_runner import warm_start
src, out = Path(sys.argv[1]), Path(sys.argv[2])
old = torch.load(src, map_location="cpu", weights_only=False)
new_path = warm_start.weights_only(src, out)
new = torch.load(new_path, map_location="cpu", weights_only=False)
same = all(torch.equal(old[k][p], new[k][p]) for k in old if k.endswith("state_dict") and "optimizer" not in k
           for p in old[k])
print(json.dumps({"name": new_path.name, "oldKeys": sorted(old), "newKeys": sorted(new), "same": same,
                  "counters": {k: new[k] for k in warm_start.COUNTERS if k in new},
                  "oldCounters": {k: old[k] for k in warm_start.COUNTERS if k in old}}))
'''


@pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")
@pytest.mark.parametrize("library", sorted(CHECKPOINTS))
def test_weights_only_keeps_the_weights_and_resets_the_counters(tmp_path: Path, library: str) -> None:
    src = CHECKPOINTS[library]
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", CHECK, str(src), str(tmp_path)], capture_output=True,
                          text=True, timeout=300, cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["name"] == f"warm-start{src.suffix}"  # no iteration or epoch left in the name
    assert [k for k in doc["oldKeys"] if "optimizer" in k] and not [k for k in doc["newKeys"] if "optimizer" in k]
    assert doc["same"] is True
    assert doc["oldCounters"] and any(v > 0 for v in doc["oldCounters"].values())
    assert doc["counters"] == dict.fromkeys(doc["oldCounters"], 0)
