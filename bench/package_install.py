#!/usr/bin/env python
"""Benchmark: installing the same env package again with the package cache (a retry, another node, a rerun).

Each repetition makes a fresh job environment (``JobEnvironment.create``, as every job does) and runs
``packages.fetch_and_install`` of the guide's example package (``examples/envs/my_custom_env`` packed with the
guide's ``tar -czf``), first with an empty cache location, then a second time with the same one. The second
install is what the cache is for; the last line is ``second_install_s`` (median).

Run: ``.venvs/isaaclab/bin/python bench/package_install.py [--reps 3]`` (PYTHONPATH=task_image).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from isaaclab_runner import packages
from isaaclab_runner.caches import WheelCache

REPO = Path(__file__).resolve().parents[1]


def guide_tar(dest: Path) -> Path:
    """The example package packed as the guide's Option B (``tar -czf ... .`` inside the project folder)."""
    work = dest / "src"
    shutil.copytree(REPO / "examples" / "envs" / "my_custom_env", work,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    archive = dest / "my_custom_env.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "--exclude=*.pyc", "--exclude=__pycache__", "."], cwd=work,
                   check=True)
    return archive


def main() -> int:
    """Time first and second installs; print one JSON line per repetition and the medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    first, second = [], []
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        root = Path(tmp)
        archive = guide_tar(root)
        for rep in range(args.reps):
            cache = WheelCache(str(root / f"cache-{rep}"), root / f"scratch-{rep}")
            times = []
            for job in ("first", "second"):
                work = root / f"{job}-{rep}"
                env = packages.JobEnvironment.create(work / "venv")
                start = time.monotonic()
                packages.fetch_and_install(str(archive), work, env, cache)
                times.append(time.monotonic() - start)
            first.append(times[0])
            second.append(times[1])
            print(json.dumps({"rep": rep, "first_install_s": round(times[0], 2),
                              "second_install_s": round(times[1], 2)}), flush=True)
    print(f"first_install_s {statistics.median(first):.2f}")
    print(f"second_install_s {statistics.median(second):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
