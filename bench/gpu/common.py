"""Shared helpers of the GPU benchmarks: run a command with a log, read Perf/total_fps from event files."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TASK = "Isaac-Custom-Cartpole-Direct"
FPS_TAG = "Perf/total_fps"


def run_logged(cmd: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None,
               timeout: float = 900, stamp: bool = False) -> tuple[int, float]:
    """Run ``cmd`` with its output in ``log``; return (exit code, wall seconds).

    With ``stamp``, each line starts with the seconds since the command started (``[  12.34] ...``), so the phases
    of a start-up that prints no times of its own can be read from the log.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        if not stamp:
            proc = subprocess.run(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=f,
                                  stderr=subprocess.STDOUT, timeout=timeout)
            return proc.returncode, time.monotonic() - start
        child = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
        assert child.stdout is not None
        for line in child.stdout:
            f.write(f"[{time.monotonic() - start:8.2f}] {line}")
            f.flush()  # a call cut short keeps the log up to here
            if time.monotonic() - start > timeout:
                child.kill()
        code = child.wait()
    return code, time.monotonic() - start


def scalars(root: Path, tag: str) -> dict[int, float]:
    """Every value of ``tag`` in the event files under ``root`` (TensorBoard's own reader: the reference)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    values: dict[int, float] = {}
    for path in sorted(root.rglob("events.out.tfevents*")):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            values.update({e.step: e.value for e in acc.Scalars(tag)})
    return values


def mean_fps(root: Path, first: int = 10, last: int = 99) -> float:
    """Mean of Perf/total_fps over iterations first..last (the issue's measure of env-steps/s)."""
    fps = scalars(root, FPS_TAG)
    window = [v for step, v in fps.items() if first <= step <= last]
    if not window:
        raise RuntimeError(f"no {FPS_TAG} between {first} and {last} under {root}")
    return sum(window) / len(window)


def bench_arguments(description: str) -> argparse.ArgumentParser:
    """The arguments every GPU benchmark takes: sizes, where results and scratch files go."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--num-envs", type=int, default=16384)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu")
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/isaaclab-bench"))
    return parser


def package_example(scratch: Path) -> Path:
    """Package the example env as the seed's user guide does (tar -czf), as the job's env package."""
    package = scratch / "custom_cartpole.tar.gz"
    package.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-czf", str(package), "-C", str(REPO / "examples" / "envs"), "--exclude=build",
                    "--exclude=*.egg-info", "--exclude=__pycache__", "custom_cartpole"], check=True)
    return package


def job_spec(job_id: str, staging: Path, package: Path, num_envs: int, iterations: int, **extra: object) -> dict:
    """A job spec as the Airflow side's resolve step writes it (camelCase, job-spec.schema.json)."""
    return {"jobId": job_id, "mode": "train", "task": TASK, "rlLibrary": "rsl_rl", "seed": 42, "numEnvs": num_envs,
            "maxIterations": iterations, "envPackageUri": f"file://{package}", "stagingUri": str(staging),
            "device": "auto", **extra}


def write_json(path: Path, data: object) -> Path:
    """Write ``data`` as JSON to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def gpu_name() -> str:
    """The GPU model, from nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True)
    except FileNotFoundError:
        return "none (CPU)"
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"


def python() -> str:
    """The interpreter that has Isaac Lab (this one)."""
    return sys.executable
