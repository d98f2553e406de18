"""Run one job spec: resolve → fetch and install the env package → run Isaac Lab → collect → upload to staging."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

from isaaclab_runner import EXIT_FAILED, EXIT_OK, EXIT_USAGE, isaaclab_cli, packages, storage
from isaaclab_runner.libraries import get_library

log = logging.getLogger("isaaclab_runner")

PROGRESS_INTERVAL_S = 2.0  # progress.json is rewritten at most this often (an S3 PUT each time in production)


class Tee:
    """Write every line both to our stdout (streamed by the backend) and to runner.log (published)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[str] = path.open("a", buffering=1)

    def write(self, text: str) -> None:
        """Write ``text`` to both sinks."""
        sys.stdout.write(text)
        sys.stdout.flush()
        self.file.write(text)


class JobRunner:
    """Runs one job spec in ``workdir`` and leaves its outputs at the spec's staging URI."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.staging = spec["stagingUri"]
        self.tee = Tee(workdir / "runner.log")
        self.progress: dict[str, Any] = {"jobId": spec["jobId"], "state": "starting", "mode": spec["mode"]}
        self._last_progress = 0.0
        self._child: subprocess.Popen[str] | None = None

    def run(self) -> int:
        """Run every stage; return the process exit code (0 ok, 2 bad input, 1 failure)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        result: dict[str, Any] = {"jobId": self.spec["jobId"], "status": "failed"}
        code = EXIT_FAILED
        try:
            code = self._run_stages(result)
        except packages.PackageError as exc:
            self.say(f"ERROR: {exc}")
            result["error"], code = str(exc), EXIT_USAGE
        except Exception as exc:  # reported in result.json, then re-raised by exit code
            log.exception("runner failed")
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            result["exitCode"] = code
            self.progress["state"] = "succeeded" if code == EXIT_OK else "failed"
            self._write_progress(force=True)
            self.tee.file.close()
            storage.upload(self.workdir / "runner.log", storage.join(self.staging, "runner.log"))
            # result.json last: its presence tells the Airflow side the staging folder is complete
            storage.write_text(storage.join(self.staging, "result.json"), json.dumps(result, indent=2),
                               self.workdir / "result.json")
        return code

    def _run_stages(self, result: dict[str, Any]) -> int:
        spec = self.spec
        if spec["mode"] != "train":
            raise packages.PackageError(f"mode {spec['mode']!r} is not supported by this runner yet; use train")
        library = get_library(spec["rlLibrary"])
        # Fetch and install
        self._set_state("installing")
        if spec.get("envPackageUri"):
            packages.fetch_and_install(spec["envPackageUri"], self.workdir)
        packages.verify_task(spec["task"])
        self.say(f"Task {spec['task']} is registered")
        # Run Isaac Lab; logs land in ./logs/<library>/ of the working directory
        device = isaaclab_cli.resolve_device(spec.get("device", "auto"))
        cwd = self.workdir / "isaaclab"
        cwd.mkdir(parents=True, exist_ok=True)
        cmd = isaaclab_cli.train_command(spec, library, device)
        self.progress.update(state="running", iteration=0, maxIterations=spec["maxIterations"])
        exit_code = self._stream(cmd, cwd, isaaclab_cli.child_env(device), library)
        # Collect and upload
        run_dir = library.find_run_dir(cwd)
        if run_dir is not None:
            n = storage.upload_tree(run_dir, storage.join(self.staging, "run"))
            self.say(f"Uploaded {n} files of {run_dir} to {storage.join(self.staging, 'run')}")
            result["runDir"] = run_dir.name
            result["checkpoints"] = sorted(p.name for pat in library.CHECKPOINT_PATTERNS for p in run_dir.glob(pat))
        result["iterations"] = self.progress.get("iteration", 0)
        if exit_code != 0:
            result["error"] = f"isaaclab train exited with {exit_code}; see runner.log"
            return EXIT_FAILED
        result["status"] = "succeeded"
        return EXIT_OK

    def _stream(self, cmd: list[str], cwd: Path, env: dict[str, str], library: Any) -> int:
        """Run ``cmd``, copying its output line by line and turning it into progress."""
        self.say("Running: " + " ".join(cmd))
        start = time.monotonic()
        self._child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, bufsize=1)
        assert self._child.stdout is not None
        for line in self._child.stdout:
            self.tee.write(line)
            if library.parse_progress(line, self.progress):
                self.progress["elapsedS"] = round(time.monotonic() - start, 1)
                self._write_progress()
        code = self._child.wait()
        self.say(f"isaaclab exited with {code} after {time.monotonic() - start:.1f}s")
        return code

    def say(self, message: str) -> None:
        """Print a runner message (prefixed, so it stands out among Isaac Lab's output)."""
        self.tee.write(f"[runner] {message}\n")

    def _set_state(self, state: str) -> None:
        self.progress["state"] = state
        self._write_progress(force=True)

    def _write_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        self._last_progress = now
        self.progress["updatedAt"] = time.time()
        storage.write_text(storage.join(self.staging, "progress.json"), json.dumps(self.progress),
                           self.workdir / "progress.json")

    def _on_sigterm(self, signum: int, frame: object) -> None:
        """Stop Isaac Lab and let ``run`` upload what exists (Batch sends SIGTERM before killing)."""
        self.say("SIGTERM received: stopping Isaac Lab and uploading what exists")
        if self._child is not None and self._child.poll() is None:
            self._child.terminate()
