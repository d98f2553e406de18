"""The library versions a job trained with, for ``result.json`` (the registry tags a policy version with them)."""

from __future__ import annotations

from importlib import metadata

# the distributions behind each rlLibrary (rsl_rl's is published as rsl-rl-lib)
DISTRIBUTIONS = {"rsl_rl": "rsl-rl-lib", "skrl": "skrl", "rl_games": "rl-games"}


def library_versions(rl_library: str) -> dict[str, str]:
    """Versions of torch and the job's RL library that this Python has (a missing one is left out)."""
    out = {}
    for dist in ("torch", DISTRIBUTIONS.get(rl_library, rl_library)):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
