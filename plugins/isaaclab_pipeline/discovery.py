"""Checkpoint auto-discovery (the guide's Option 3) that survives an asset's life.

An asset gathers every run VAMS ingested into it: ``{uuid}/checkpoints/model_*.pt``, the copies of interrupted
attempts under ``{uuid}/checkpoints/attempt-<n>/``, ``{uuid}/exported/policy.pt`` (a TorchScript export, not a
checkpoint), and checkpoints users uploaded by hand (``checkpoints/my_policy.pt``). The rules:

* only training checkpoints of the conf's RL library count (``CHECKPOINT_NAMES``: the runner's
  ``libraries/<lib>.py`` CHECKPOINT_PATTERNS, kept twice on purpose: the Airflow side never imports the runner);
* never anything under ``exported/``;
* never a run's ``attempt-<n>/`` copies when that run's final checkpoints are there;
* the newest run (its ``manifest.json``'s time, else its newest checkpoint's), then the highest iteration.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from isaaclab_pipeline import staging_layout, storage

CHECKPOINT_NAMES = {
    "rsl_rl": re.compile(r"^model_(\d+)\.pt$"),
    "skrl": re.compile(r"^agent_(\d+)\.pt$"),
    "rl_games": re.compile(r"^.*?(?:_ep_(\d+).*)?\.pth$"),
}
_ATTEMPT = re.compile(r"^attempt-\d+$")


@dataclass
class Discovery:
    """The checkpoint chosen (or None), why, and what was found and skipped (with the reason for each)."""

    uri: str | None
    reason: str
    found: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One paragraph for the log and the error: the choice, then what was skipped and why."""
        lines = [self.reason]
        lines += [f"  skipped {uri}: {why}" for uri, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def _run_of(uri: str) -> tuple[str, bool]:
    """The run folder a checkpoint belongs to and whether it is an attempt copy (``checkpoints/attempt-<n>/``)."""
    parts = PurePosixPath(uri.split("://", 1)[-1]).parts
    if "checkpoints" in parts:
        i = len(parts) - 1 - parts[::-1].index("checkpoints")
        attempt = i + 2 < len(parts) and bool(_ATTEMPT.match(parts[i + 1]))
        return uri[: uri.rfind("/checkpoints/")], attempt
    return uri.rsplit("/", 1)[0], False


def discover(objects: Sequence[storage.StoredObject], rl_library: str) -> Discovery:
    """Pick the checkpoint an evaluation without a named checkpoint scores (rules: the module docstring)."""
    pattern = CHECKPOINT_NAMES[rl_library]
    mtimes = {o.uri: o.mtime for o in objects}
    found: list[str] = []
    skipped: dict[str, str] = {}
    runs: dict[str, dict[str, list[str]]] = {}
    for obj in objects:
        name = obj.uri.rsplit("/", 1)[-1]
        if not name.lower().endswith(staging_layout.CHECKPOINT_SUFFIXES):
            continue
        found.append(obj.uri)
        if "exported" in PurePosixPath(obj.uri.split("://", 1)[-1]).parts:
            skipped[obj.uri] = "an exported policy (exported/), not a training checkpoint"
            continue
        if not pattern.match(name):
            skipped[obj.uri] = f"not a {rl_library} training checkpoint name ({pattern.pattern})"
            continue
        run, attempt = _run_of(obj.uri)
        runs.setdefault(run, {"final": [], "attempt": []})["attempt" if attempt else "final"].append(obj.uri)
    candidates: dict[str, list[str]] = {}
    for run, kinds in runs.items():
        if kinds["final"]:
            for uri in kinds["attempt"]:
                skipped[uri] = "an earlier attempt's copy; the run's final checkpoints are there"
            candidates[run] = kinds["final"]
        else:
            candidates[run] = kinds["attempt"]
    if not candidates:
        return Discovery(None, f"no {rl_library} training checkpoint found", sorted(found), skipped)

    def run_time(run: str) -> tuple[float, float]:
        manifest = mtimes.get(f"{run}/manifest.json")
        newest = max(mtimes[u] for u in candidates[run])
        return (manifest if manifest is not None else newest, newest)

    newest_run = max(candidates, key=run_time)
    by = "its manifest.json" if f"{newest_run}/manifest.json" in mtimes else "its files' times"
    chosen = max(candidates[newest_run], key=lambda u: (_iteration(u, pattern), mtimes[u]))
    for run, uris in candidates.items():
        for uri in uris:
            if uri != chosen:
                skipped[uri] = ("a lower iteration of the same run" if run == newest_run
                                else f"an older run than {newest_run}")
    reason = (f"auto-discovered {chosen}: the highest iteration of the newest run {newest_run} (by {by}) among "
              f"{sum(len(u) for u in candidates.values())} {rl_library} checkpoint(s) of {len(candidates)} run(s)")
    return Discovery(chosen, reason, sorted(found), skipped)


def _iteration(uri: str, pattern: re.Pattern[str]) -> int:
    match = pattern.match(uri.rsplit("/", 1)[-1])
    return int(match.group(1)) if match and match.group(1) else -1
