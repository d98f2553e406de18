"""Shared by the CPU benchmarks of the runner (export.py, cold_start.py): package the example env, run a runner
job as the local backend does, and time the lines of its output."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ISAACLAB_PYTHON = REPO / ".venvs" / "isaaclab" / "bin" / "python"
EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"
TASK = "Isaac-Custom-Cartpole-Direct"
# the library's per-iteration line: its first appearance is the end of Isaac Lab's start-up
FIRST_ITERATION = {"rsl_rl": "Learning iteration", "skrl": "it/s]", "rl_games": "epoch:"}
RL_GAMES_SMALL = ["agent.params.config.minibatch_size=128"]


def bench_arguments(doc: str | None, reps: int) -> argparse.ArgumentParser:
    """The options every CPU benchmark of the runner takes: ``--reps``, ``--out`` and ``--scratch``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=reps)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cpu")
    parser.add_argument("--scratch", type=Path, default=None, help="the working folder (default: a temp folder)")
    return parser


def bench_folders(args: argparse.Namespace, name: str) -> tuple[Path, Path, Path]:
    """The working folder, the results folder ``{--out}/{name}`` and the example env packaged in the first."""
    root = args.scratch or Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    return root, out, package_example(root)


def write_summary(out: Path, summary: dict, headline: dict[str, float]) -> None:
    """Write ``{out}/summary.json`` and print the headline figures as the last lines, ``name: value``."""
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, value in headline.items():
        print(f"{name}: {value:.2f}")


def package_example(dest: Path) -> Path:
    """The example env package as the seed's tar.gz of the project folder."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "custom_cartpole.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(EXAMPLE_ENV, arcname="custom_cartpole",
                filter=lambda t: None if any(p in t.name for p in ("/build", ".egg-info", "__pycache__")) else t)
    return archive


@dataclass
class Job:
    """A finished runner job: exit code, wall time, each output line with its time since the start."""

    code: int
    wall_s: float
    lines: list[tuple[float, str]] = field(default_factory=list)
    staging: Path = Path()
    workdir: Path = Path()

    def first(self, text: str) -> float | None:
        """Seconds from the start to the first line containing ``text``."""
        return next((t for t, line in self.lines if text in line), None)

    def result(self) -> dict:
        return json.loads((self.staging / "result.json").read_text())


def run_job(root: Path, name: str, library: str, package: Path, iterations: int, num_envs: int = 16,
            env: dict[str, str] | None = None, **fields: object) -> Job:
    """Run ``python -m isaaclab_runner run`` on one train spec in ``root/name``; its log is ``root/name.log``."""
    staging = root / name / "staging"
    spec = {"jobId": str(uuid.uuid4()), "mode": "train", "task": TASK, "rlLibrary": library, "seed": 1,
            "numEnvs": num_envs, "maxIterations": iterations, "stagingUri": str(staging), "device": "cpu",
            "envPackageUri": str(package), "overrides": RL_GAMES_SMALL if library == "rl_games" else [], **fields}
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "spec.json").write_text(json.dumps(spec))
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env.update(env or {})
    cmd = [str(ISAACLAB_PYTHON), "-m", "isaaclab_runner", "run", "--spec", str(root / name / "spec.json"),
           "--workdir", str(root / name / "work")]
    job = Job(0, 0.0, staging=staging, workdir=root / name / "work")
    start = time.monotonic()
    with (root / f"{name}.log").open("w") as log:
        proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.monotonic() - start
            job.lines.append((now, line.rstrip("\n")))
            log.write(f"{now:8.2f} {line}")
        job.code = proc.wait()
    job.wall_s = time.monotonic() - start
    return job


def timed(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Run ``cmd`` with its output in ``log``; return (exit code, wall seconds)."""
    child_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    child_env.update(env or {})
    start = time.monotonic()
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        code = subprocess.run(cmd, cwd=cwd, env=child_env, stdout=f, stderr=subprocess.STDOUT).returncode
    return code, time.monotonic() - start
