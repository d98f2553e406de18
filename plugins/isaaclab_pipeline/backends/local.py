"""The local backend (the embedded default): the task runner as a detached subprocess of the Isaac Lab venv.

Each job has a folder ``{pipeline_home}/jobs/{job_id}/`` holding ``spec.json``, ``pid``, ``attempt``,
``stdout.log`` and, once the job is over, ``exit_code``. The runner is started in its own session, so it outlives
the submit task (like a Batch job) and the wait can reattach to it after a retry.

Like the Batch job definition's retryStrategy, an attempt that ends with exit code 143 (the runner staged its
checkpoints after a SIGTERM) is started again, up to ``isaaclab_local_max_attempts`` attempts, by the shell
wrapper the job runs in (where the job runs, as on Batch; ``status`` only reads). The new attempt
(``ISAACLAB_JOB_ATTEMPT`` in its environment) resumes from the staged checkpoints. ``cancel`` is never retried.

The wait step polls a local job exactly as it polls a Batch one: through the deferrable trigger, with
``LocalJobPoller`` (exit code, log offset) in place of DescribeJobs.

A new submission (after a failed job, or of a job id whose staging folder holds files) starts from an empty staging
folder: what was there is archived (``backends.staging_archive``), so it neither resumes from nor publishes an
earlier job's files. Retried attempts of one submission share its staging folder, which is how they resume.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from isaaclab_pipeline import staging_layout
from isaaclab_pipeline.backends.base import JobHandle, JobState, JobStatus, Poll, PollerSpec
from isaaclab_pipeline.backends.staging_archive import archive_staging
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings, pipeline_home

log = logging.getLogger(__name__)

# The shell wrapper runs the attempts and records the job's exit code (a process that is not our child can't
# collect it). A SIGTERM to the job's process group reaches the runner (which stages and exits 143); the trap keeps
# the wrapper alive to retry it, unless the job was cancelled.
_WRAPPER = """trap 'true' TERM
cd "$1" && max="$2" && shift 2 || exit 1
attempt=1
while :; do
  echo "$attempt" > attempt
  # a subshell has SIGTERM's default action again, so a cancel (cancelled is written before the signal) that
  # lands before the runner exists ends the attempt too
  ( [ -e cancelled ] && exit 143; ISAACLAB_JOB_ATTEMPT="$attempt" exec "$@" ) >> stdout.log 2>&1
  code=$?
  if [ "$code" = 143 ] && [ "$attempt" -lt "$max" ] && [ ! -e cancelled ]; then
    echo "[backend] attempt $attempt exited with $code (interrupted); starting attempt $((attempt + 1))" >> stdout.log
    attempt=$((attempt + 1))
    continue
  fi
  break
done
echo "$code" > exit_code.tmp && mv exit_code.tmp exit_code
"""
# Variables of the Airflow side's interpreter that would break the Isaac Lab venv's one.
_SCRUBBED_ENV = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")


class LocalBackend:
    """Runs JobSpecs with ``<isaaclab python> -m isaaclab_runner run``."""

    name = "local"

    def __init__(self, settings: PipelineSettings, root: Path | None = None) -> None:
        self.python = settings.isaaclab_python
        self.root = root or pipeline_home() / "jobs"
        self.max_attempts = settings.local_max_attempts

    def job_dir(self, job_id: str) -> Path:
        """Return the folder of job ``job_id``."""
        return self.root / job_id

    def submit(self, spec: JobSpec) -> JobHandle:
        """Start the runner for ``spec`` unless a run of it is already going or succeeded (then reattach)."""
        jdir = self.job_dir(spec.job_id)
        handle = JobHandle(self.name, spec.job_id, str(jdir), {"python": self.python}, spec.staging_uri)
        if (jdir / "pid").exists():
            state = self.status(handle).state
            if state != JobState.FAILED:
                log.info("Job %s already submitted (%s); reattaching", spec.job_id, state)
                return handle
            self._archive_attempt(jdir)
        if not Path(self.python).exists():
            raise FileNotFoundError(f"Isaac Lab interpreter {self.python!r} not found; run `make install` or set "
                                    "the Variable isaaclab_isaaclab_python to the Isaac Lab venv's python")
        archive_staging(spec.staging_uri, None)
        jdir.mkdir(parents=True, exist_ok=True)
        (jdir / staging_layout.SPEC).write_text(spec.to_json())
        self._start(jdir, spec.job_id)
        return handle

    def _start(self, jdir: Path, job_id: str) -> None:
        cmd = [self.python, "-m", "isaaclab_runner", "run", "--spec", str(jdir / staging_layout.SPEC),
               "--workdir", str(jdir / "work")]
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        (jdir / "attempt").write_text("1")
        proc = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "sh", str(jdir), str(self.max_attempts), *cmd], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        (jdir / "pid").write_text(str(proc.pid))
        log.info("Started job %s (pid %d, up to %d attempts): %s", job_id, proc.pid, self.max_attempts, " ".join(cmd))

    def status(self, handle: JobHandle) -> JobStatus:
        """Return SUCCEEDED/FAILED once the job is over, RUNNING while its wrapper lives (reads only)."""
        poll = LocalJobPoller(handle.external_id).poll()
        return JobStatus(poll.state, poll.reason or (poll.status if poll.state == JobState.RUNNING else ""),
                         _exit_code(Path(handle.external_id)))

    def log_tail(self, handle: JobHandle, lines: int = 40) -> list[str]:
        """Return the last ``lines`` lines of the job's log."""
        path = Path(handle.external_id) / "stdout.log"
        if not path.exists():
            return []
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 64 * 1024))
            return f.read().decode(errors="replace").splitlines()[-lines:]

    def cancel(self, handle: JobHandle, reason: str) -> None:
        """Send SIGTERM to the job's process group (the runner uploads what exists, then exits); no retry follows."""
        LocalJobPoller(handle.external_id).terminate(reason)

    def links(self, handle: JobHandle) -> dict[str, dict[str, Any]]:
        """A local job has no console pages."""
        return {}

    def poller(self, handle: JobHandle) -> PollerSpec:
        """The trigger polls the job folder."""
        return PollerSpec("local", {"job_dir": handle.external_id})

    @staticmethod
    def _archive_attempt(jdir: Path) -> None:
        """Move a failed attempt's files aside so the retry starts clean but nothing is lost."""
        n = 1 + sum(1 for _ in jdir.glob("attempt-*"))
        dest = jdir / f"attempt-{n}"
        dest.mkdir()
        for name in ("pid", "stdout.log", "exit_code", staging_layout.SPEC, "attempt", "cancelled"):
            if (jdir / name).exists():
                shutil.move(jdir / name, dest / name)
        log.info("Previous attempt failed; its files are in %s", dest)


class LocalJobPoller:
    """The trigger's view of a local job: its folder's ``exit_code``, ``attempt``, ``pid`` and ``stdout.log``.

    :param job_dir: the job's folder (the handle's ``external_id``).
    """

    def __init__(self, job_dir: str) -> None:
        self.job_dir = Path(job_dir)

    def poll(self) -> Poll:
        """Where the job is: over (exit code), running (which attempt), or gone without an exit code."""
        attempt = _read_int(self.job_dir / "attempt") or 1
        code = _exit_code(self.job_dir)
        if code is not None:
            if code == 0:
                return Poll(JobState.SUCCEEDED, "SUCCEEDED", attempts=attempt)
            cancelled = self.job_dir / "cancelled"
            why = f"; cancelled: {cancelled.read_text()}" if cancelled.exists() else ""
            return Poll(JobState.FAILED, "FAILED", f"runner exited with code {code} (attempt {attempt}){why}", attempt)
        pid = _read_int(self.job_dir / "pid")
        if pid is None:
            return Poll(JobState.FAILED, "FAILED", "job was never started", attempt)
        if _alive(pid):
            return Poll(JobState.RUNNING, f"RUNNING (attempt {attempt})", attempts=attempt)
        return Poll(JobState.FAILED, "FAILED", "runner process ended without an exit code (killed?)", attempt)

    def read_log(self, offset: int) -> tuple[list[str], int]:
        """Return the complete log lines written since byte ``offset`` and the new offset."""
        path = self.job_dir / "stdout.log"
        if not path.exists():
            return [], offset
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # keep a half-written last line for the next call
        return data[:end].decode(errors="replace").splitlines(), offset + end

    def terminate(self, reason: str) -> None:
        """SIGTERM the job's process group; ``cancelled`` stops the wrapper from starting another attempt."""
        pid = _read_int(self.job_dir / "pid")
        if pid is None:
            return
        (self.job_dir / "cancelled").write_text(reason)
        if _alive(pid):
            log.warning("Terminating local job %s (pid %d): %s", self.job_dir.name, pid, reason)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _exit_code(job_dir: Path) -> int | None:
    path = job_dir / "exit_code"
    if not path.exists():
        return None
    return _read_int(path) if _read_int(path) is not None else 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (exited, not yet reaped) still answers kill(0); /proc tells it apart
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


# Accounting (``backends.accounting``): what the job folder says of the job's times; a local job has no bill

def queue_waits(handle: JobHandle, attempts: list[Mapping[str, Any]], **_: Any) -> list[float | None]:
    """Each attempt's wait: from the spec's staging (submitted), then from the previous attempt's end."""
    spec = Path(handle.external_id) / staging_layout.SPEC
    previous: float | None = spec.stat().st_mtime if spec.exists() else None
    out: list[float | None] = []
    for a in attempts:
        start = a.get("startedAt")
        out.append(None if previous is None or start is None else round(max(0.0, start - previous), 3))
        previous = a.get("finishedAt")
    return out


def job_cost(handle: JobHandle, aws_conn_id: str | None = None, now: float | None = None, **_: Any) -> dict[str, Any]:
    """The wall time of a local job from its folder (``pid`` written at start, ``exit_code`` at the end)."""
    return local_cost(handle.external_id, now)


def local_cost(job_dir: str | Path, now: float | None = None) -> dict[str, Any]:
    """The wall time of the local job in ``job_dir`` (its queue wait apart); no GPU-seconds, no price."""
    jdir = Path(job_dir)
    now = time.time() if now is None else now
    start = _mtime(jdir / "pid") or _mtime(jdir / staging_layout.SPEC)
    end = _mtime(jdir / "exit_code")
    attempt = (jdir / "attempt").read_text().strip() if (jdir / "attempt").is_file() else "1"
    wall = None if start is None else round(max(0.0, (end or now) - start), 3)
    waits = queue_waits(JobHandle("local", "", str(jdir)), [{"startedAt": _mtime(jdir / "pid")}])
    return {"backend": "local", "live": end is None and start is not None, "wallSeconds": wall,
            "queueWaitSeconds": waits[0],
            "attempts": int(attempt) if attempt.isdigit() else 1, "gpuSeconds": None, "estimatedCostUsd": None,
            "notes": ["local backend: wall time only"]}


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
