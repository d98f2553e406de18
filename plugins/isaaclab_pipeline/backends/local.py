"""The local backend (the embedded default): the task runner as a detached subprocess of the Isaac Lab venv.

Each job has a folder ``{pipeline_home}/jobs/{job_id}/`` holding ``spec.json``, ``pid``, ``stdout.log`` and,
once the runner exits, ``exit_code``. The runner is started in its own session, so it outlives the submit
task (like a Batch job) and the wait step can reattach to it after a retry.

Like the Batch job definition's retryStrategy, an attempt that ends with exit code 143 (the runner staged its
checkpoints after a SIGTERM) is started again, up to ``isaaclab_local_max_attempts`` attempts; the new attempt
(``ISAACLAB_JOB_ATTEMPT`` in its environment) resumes from the staged checkpoints. ``cancel`` is never retried.

A new submission (after a failed job, or of a job id whose staging folder holds files) starts from an empty staging
folder: what was there is archived (``backends.base.archive_staging``), so it neither resumes from nor publishes an
earlier job's files. Retried attempts of one submission share its staging folder, which is how they resume.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from pathlib import Path

from isaaclab_pipeline.backends.base import JobHandle, JobState, JobStatus, archive_staging
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings, pipeline_home

log = logging.getLogger(__name__)

# The shell wrapper records the runner's exit code, which a process that is not our child can't collect.
_WRAPPER = 'cd "$1" && shift && "$@" >> stdout.log 2>&1; echo $? > exit_code.tmp && mv exit_code.tmp exit_code'
RETRY_EXIT_CODES = (143,)  # 128 + SIGTERM: what Batch's evaluateOnExit retries
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
        handle = JobHandle(self.name, spec.job_id, str(jdir), {"python": self.python})
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
        (jdir / "spec.json").write_text(spec.to_json())
        self._start(jdir, spec.job_id, attempt=1)
        return handle

    def _start(self, jdir: Path, job_id: str, attempt: int) -> None:
        cmd = [self.python, "-m", "isaaclab_runner", "run", "--spec", str(jdir / "spec.json"),
               "--workdir", str(jdir / "work")]
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env["ISAACLAB_JOB_ATTEMPT"] = str(attempt)
        (jdir / "attempt").write_text(str(attempt))
        proc = subprocess.Popen(["/bin/sh", "-c", _WRAPPER, "sh", str(jdir), *cmd], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        (jdir / "pid").write_text(str(proc.pid))
        log.info("Started job %s attempt %d (pid %d): %s", job_id, attempt, proc.pid, " ".join(cmd))

    def status(self, handle: JobHandle) -> JobStatus:
        """Return SUCCEEDED/FAILED once the runner exited, RUNNING while its process lives."""
        jdir = Path(handle.external_id)
        exit_file = jdir / "exit_code"
        if exit_file.exists():
            code = int(exit_file.read_text().strip() or 1)
            if code == 0:
                return JobStatus(JobState.SUCCEEDED, exit_code=0)
            attempt = int((jdir / "attempt").read_text()) if (jdir / "attempt").exists() else 1
            if code in RETRY_EXIT_CODES and attempt < self.max_attempts and not (jdir / "cancelled").exists():
                self._retry(jdir, handle.job_id, attempt, code)
                return JobStatus(JobState.RUNNING, f"attempt {attempt} exited with {code}; attempt {attempt + 1} "
                                 "started")
            return JobStatus(JobState.FAILED, f"runner exited with code {code}", code)
        if not (jdir / "pid").exists():
            return JobStatus(JobState.FAILED, "job was never started")
        if _alive(int((jdir / "pid").read_text())):
            return JobStatus(JobState.RUNNING)
        return JobStatus(JobState.FAILED, "runner process ended without an exit code (killed?)")

    def read_log(self, handle: JobHandle, offset: int) -> tuple[list[str], int]:
        """Return the complete log lines written since byte ``offset`` and the new offset."""
        path = Path(handle.external_id) / "stdout.log"
        if not path.exists():
            return [], offset
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # keep a half-written last line for the next call
        return data[:end].decode(errors="replace").splitlines(), offset + end

    def cancel(self, handle: JobHandle, reason: str) -> None:
        """Send SIGTERM to the runner's process group (the runner uploads what exists, then exits)."""
        pid_file = Path(handle.external_id) / "pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        (Path(handle.external_id) / "cancelled").write_text(reason)  # a cancelled job is not retried
        if _alive(pid):
            log.warning("Terminating job %s (pid %d): %s", handle.job_id, pid, reason)
            os.killpg(pid, signal.SIGTERM)

    def _retry(self, jdir: Path, job_id: str, attempt: int, code: int) -> None:
        """Start the next attempt of an interrupted job; its log continues in stdout.log."""
        dest = jdir / f"attempt-{attempt}"
        dest.mkdir(exist_ok=True)
        for name in ("pid", "exit_code"):
            shutil.move(jdir / name, dest / name)
        log.warning("Job %s attempt %d exited with %d (interrupted); starting attempt %d", job_id, attempt, code,
                    attempt + 1)
        with (jdir / "stdout.log").open("a") as f:
            f.write(f"[backend] attempt {attempt} exited with {code}; starting attempt {attempt + 1}\n")
        self._start(jdir, job_id, attempt + 1)

    @staticmethod
    def _archive_attempt(jdir: Path) -> None:
        """Move a failed attempt's files aside so the retry starts clean but nothing is lost."""
        n = 1 + sum(1 for _ in jdir.glob("attempt-*"))
        dest = jdir / f"attempt-{n}"
        dest.mkdir()
        for name in ("pid", "stdout.log", "exit_code", "spec.json", "attempt", "cancelled"):
            if (jdir / name).exists():
                shutil.move(jdir / name, dest / name)
        log.info("Previous attempt failed; its files are in %s", dest)


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
