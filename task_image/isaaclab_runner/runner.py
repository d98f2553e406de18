"""Run one job spec: fetch and install the env package → verify the task → train / evaluate / play → upload.

Modes: ``train`` runs ``isaaclab train`` (resuming from ``resumeCheckpointUri`` when set) and exports the final
policy; ``evaluate`` runs exactly ``numEpisodes`` episodes of ``checkpointUri`` (evaluate.py, Isaac Lab's
Python API); ``play`` runs the policy for ``PLAY_STEPS`` steps, with a video when ``recordVideo`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from isaaclab_runner import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    asset_mirror,
    caches,
    cloudwatch,
    evaluate,
    export,
    gpu_monitor,
    isaaclab_cli,
    launch,
    packages,
    provenance,
    staging_layout,
    storage,
    sync,
    timings,
    warm_start,
)
from isaaclab_runner.jobspec import JobSpec
from isaaclab_runner.libraries import base, get_library
from isaaclab_runner.libraries.base import RLLibrary
from isaaclab_runner.reporter import StagingReporter

log = logging.getLogger("isaaclab_runner")

EXIT_TERMINATED = 143  # 128 + SIGTERM, what Batch's retryStrategy matches for a retry
STOP_GRACE_S = 8.0  # after SIGINT, Isaac Lab gets this long before SIGKILL
SYNC_FLUSH_TIMEOUT_S = 15.0  # of the 30 s Batch allows between SIGTERM and SIGKILL
PLAY_STEPS = 300  # a play run's length in env steps (5 s of simulated time at 60 Hz), one video clip
# ISAACLAB_RUNNER_EXPORT=0 skips the export after training
EXPORT_ENV = "ISAACLAB_RUNNER_EXPORT"
EXPORT_EARLY_ENV = "ISAACLAB_RUNNER_EXPORT_EARLY"  # 1/0: start the export with training (default: on a GPU)
EXPORT_TIMEOUT_S = 300.0  # the in-process export (a few seconds) runs beside the upload; this bounds the wait

ProgressParser = Callable[[str, dict[str, Any]], bool]
# how torch and Warp report an exhausted GPU; the line is kept so the failure says what to change
# the last line of a Python traceback (``FileNotFoundError: ...``): what a failed job reports as its cause
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt): \S")
OUT_OF_MEMORY = re.compile(r"CUDA out of memory|torch\.OutOfMemoryError|OutOfMemoryError|cudaErrorMemoryAllocation|"
                           r"CUDA error: out of memory")


class JobRunner:
    """Runs one job spec in ``workdir`` and leaves its outputs at the spec's staging URI."""

    def __init__(self, spec: JobSpec, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.staging = spec.staging_uri
        self.report = StagingReporter(self.staging, workdir,
                                      {"jobId": spec.job_id, "state": "starting", "mode": spec.mode})
        self.progress = self.report.progress
        self._child: subprocess.Popen[str] | None = None
        self.task: str = spec.task  # the registered id (a 2.x id is mapped to its 3.x alias)
        self.node = launch.NodeInfo()  # this node's place in a multi-node job; read in run()
        self._synced: dict[Path, str] = {}  # checkpoints the sync staged (unchanged since): local path → URI
        self._terminated = False
        self._out_of_memory: str | None = None  # the first out-of-memory line Isaac Lab printed
        self._last_exception: str | None = None  # the last traceback's exception line Isaac Lab printed
        self.env = packages.JobEnvironment.current()  # the job's own environment once _run_stages made it
        self._export: export.BackgroundExport | export.EarlyExport | None = None  # the export beside the upload
        self.task_modules: list[str] = []  # the env package's modules (imported through import_tasks on 2.x)
        self.asset_root: Path | None = None  # the host cache the asset mirror filled (ISAACSIM_ASSET_ROOT)
        self.timings = timings.Timings(launch.job_attempt())  # where this attempt's time goes (timings.py)
        self.gpu: gpu_monitor.GpuMonitor | None = None  # NVML sampling; None without a GPU
        self._synced_events: list[Path] = []  # event files staged while training, current since

    def run(self) -> int:
        """Run every stage; return the process exit code (0 ok, 2 bad input, 1 failure, 143 after SIGTERM)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        result: dict[str, Any] = {"jobId": self.spec.job_id, "status": "failed"}
        code = EXIT_FAILED
        try:
            self.node = launch.detect_node()
            self.report.uploads, self.report.node_rank = self.node.uploads, self.node.node_rank
            launch.check_shape(self.spec.num_nodes, self.node)
            self._start_gpu_monitor()
            code = self._run_stages(result)
        except (packages.PackageError, asset_mirror.AssetMirrorError) as exc:
            self.say(f"ERROR: {exc}")
            result["error"], code = str(exc), EXIT_USAGE
        except Exception as exc:  # reported in result.json, then re-raised by exit code
            log.exception("runner failed")
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            if self._terminated:  # 143 = 128 + SIGTERM: Batch's retryStrategy and the local backend retry it
                code = EXIT_TERMINATED
            result["exitCode"] = code
            self._stop_gpu_monitor(result)
            result["timings"] = timings.combine([*self._earlier_timings(), self.timings.finish()])
            self.say(timings.format_line(result["timings"]))  # the log's last line
            self.report.finish(result, succeeded=code == EXIT_OK)  # result.json last
        return code

    def _run_stages(self, result: dict[str, Any]) -> int:
        """Install, verify the task, run the mode's stage, collect and upload; return the exit code."""
        spec = self.spec
        library = get_library(spec.rl_library)
        with self.timings.phase("install"):
            install = isaaclab_cli.detect_isaaclab()
        kernels, assets = self._start_prefetch()
        self.report.set_state("installing")
        with self.timings.phase("install"):  # into an environment of this job's own (3.x)
            if install.major >= 3:
                self.env = packages.JobEnvironment.create(self.workdir / "venv")
        wheels, package = self._install_env_package(result)
        result["seed"] = spec.seed
        result["isaacLabVersion"] = packages.isaaclab_version()
        result["libraryVersions"] = provenance.library_versions(spec.rl_library)
        if install.major >= 3:  # the pre-flight check imports every package module, as `isaaclab train` will
            with self.timings.phase("install"):
                self.task = self._verify_task(wheels, package)
            self.say(f"Task {self.task} is registered")
        # Run Isaac Lab; logs land in ./logs/<library>/ of the working directory
        with self.timings.phase("isaacLabStart"):  # `auto` imports torch to look for a GPU (NVML first)
            device = self._resolve_device()
        cwd = self.workdir / "isaaclab"
        cwd.mkdir(parents=True, exist_ok=True)
        stage = {"train": self._train, "evaluate": self._evaluate, "play": self._play}[spec.mode]
        self._wait_prefetch(kernels, assets, result)
        exit_code, run_dir = stage(library, install, device, cwd)
        # Collect and upload (rank 0 only: the other nodes' checkpoints would be duplicates)
        if run_dir is not None and run_dir.is_dir() and self.node.uploads:
            self._collect(library, run_dir, result)
        if kernels is not None and self.node.uploads and not self._terminated:  # what this job compiled, for the next
            with self.timings.phase("upload"):
                self.say(kernels.save())
            result["kernelCache"] = {"restored": kernels.restored, "saved": kernels.saved}
        result["iterations"] = self.progress.get("iteration", 0)
        if "episodes" in self.progress:
            result["episodes"] = self.progress["episodes"]
        return self._outcome(exit_code, result)

    def _start_prefetch(self) -> tuple[caches.KernelCache | None, asset_mirror.AssetSync | None]:
        """Start restoring Warp's kernel cache and syncing the task's assets while the package installs."""
        # a fresh host compiles every kernel otherwise
        kernels = caches.KernelCache.for_job(self.spec.effective_cache_uri, self.workdir / "cache")
        if kernels is not None:
            kernels.start_restore()
        # the task's assets from the deployment's mirror (every node syncs its own host cache)
        mirror = asset_mirror.mirror_uri(self.spec.asset_mirror_uri)
        assets = (asset_mirror.AssetSync(mirror, self.spec.task, self.workdir / "asset-mirror").start()
                  if mirror else None)
        return kernels, assets

    def _install_env_package(self, result: dict[str, Any]) -> tuple[caches.WheelCache | None, Path | None]:
        """Fetch and install the spec's env package (if any) into the job's environment; return the wheel cache
        and the fetched package for the task check."""
        spec = self.spec
        if not spec.env_package_uri:
            return None, None
        cache_uri = spec.effective_cache_uri
        wheels = caches.WheelCache(cache_uri, self.workdir / "cache") if cache_uri else None
        with self.timings.phase("fetch"):  # fetched apart from the install, so each has its own time
            name = spec.env_package_uri.rstrip("/").rsplit("/", 1)[-1]
            package = storage.download(spec.env_package_uri, self.workdir / "fetched" / name)
        with self.timings.phase("install"):
            installed = packages.fetch_and_install(str(package), self.workdir, self.env, wheels,
                                                   timeout_s=spec.install_timeout_s)
        self.task_modules = installed.modules
        how = "its isaaclab.tasks entry point" if installed.entry_point else "imported by the runner"
        self.say(f"Installed {installed.dist_name} {installed.version}: modules {', '.join(installed.modules)} "
                 f"({how})")
        result["envPackage"] = {"name": installed.dist_name, "version": installed.version,
                                "modules": installed.modules}
        return wheels, package

    def _wait_prefetch(self, kernels: caches.KernelCache | None, assets: asset_mirror.AssetSync | None,
                       result: dict[str, Any]) -> None:
        """Wait for the kernel cache restore and the asset sync ``_start_prefetch`` started."""
        if kernels is not None:
            with self.timings.phase("kernelCacheRestore"):
                self.say(kernels.wait_restored())
        if assets is not None:
            with self.timings.phase("fetch"):
                synced = assets.wait()
            self.asset_root = synced.root
            self.say(synced.summary(self.task))
            result["assetMirror"] = {"uri": assets.uri, "fetched": synced.fetched, "cached": synced.cached,
                                     "seconds": round(synced.seconds, 3)}

    def _collect(self, library: RLLibrary, run_dir: Path, result: dict[str, Any]) -> None:
        """Upload the run folder to staging (what the sync staged already is not sent twice), finish the export
        and record the run's checkpoints."""
        # after SIGTERM no checkpoints are sent (the flush staged them all): send the rest, quickly
        skip = library.CHECKPOINT_PATTERNS if self._terminated else ()
        if self._export is not None:  # being written meanwhile; uploaded once complete
            skip += (f"{export.EXPORT_DIR}/*",)
        run_uri = storage.join(self.staging, sync.RUN_DIR)
        with self.timings.phase("upload"):
            n = storage.upload_tree(run_dir, run_uri, skip=skip, exclude={*self._synced, *self._synced_events})
        synced = f" ({len(self._synced)} checkpoints were staged while training)" if self._synced else ""
        self.say(f"Uploaded {n} files of {run_dir} to {run_uri}{synced}")
        with self.timings.phase("export"):
            self._finish_export(library, run_dir, run_uri)
        result["runDir"] = run_dir.name
        checkpoints = base.checkpoints(library, run_dir)
        result["checkpoints"] = [p.relative_to(run_dir).as_posix() for p in checkpoints]
        result["stagedCheckpoints"] = self._staged_checkpoints(checkpoints, run_dir, run_uri)

    def _outcome(self, exit_code: int, result: dict[str, Any]) -> int:
        """The job's exit code from the stage's, with the error (SIGTERM, out of memory, a traceback) in ``result``."""
        if self._terminated:
            result["error"] = "interrupted by SIGTERM; checkpoints are staged for the next attempt to resume from"
            return EXIT_TERMINATED
        if exit_code != 0 and self._out_of_memory:
            stats = self.gpu.stats() if self.gpu is not None else None
            peak = (f"; peak {stats['peakMemoryMiB'] / 1024:.1f} of {stats['memoryTotalMiB'] / 1024:.0f} GiB used "
                    "before it") if stats else ""
            result["error"] = (f"the GPU ran out of memory ({self._out_of_memory}{peak}): lower numEnvs "
                               f"({self.spec.num_envs} now) or use a larger GPU")
            self.say(f"ERROR: {result['error']}")  # the last lines of the log are what the wait step shows
            return EXIT_FAILED
        if exit_code != 0:
            cause = f"{self._last_exception} (" if self._last_exception else "("
            result["error"] = (f"isaaclab {self.spec.mode} failed: {cause}exit {exit_code}; the traceback is in "
                               "runner.log)")
            self.say(f"ERROR: {result['error']}")
            return EXIT_FAILED
        result["status"] = "succeeded"
        return EXIT_OK

    def _verify_task(self, wheels: caches.WheelCache | None, package: Path | None) -> str:
        """The registered id of the spec's task. The pre-flight check imports every task module in a fresh
        interpreter (5-10 s); its list is kept in the wheel cache by the package's sha256 and this image, so a later
        job with the same package (a retry, another node or host, a rerun) checks against it at once."""
        if wheels is None or package is None:
            return packages.verify_task(self.spec.task, self.env.python)
        cached = wheels.get_tasks(package)
        if cached is not None:
            task = packages.verify_task(self.spec.task, tasks=[t for ids in cached.values() for t in ids])
            self.say(f"Task list of {package.name} from the cache (an earlier job with this package checked it)")
            return task
        sources = packages.tasks_by_source(self.env.python)
        task = packages.verify_task(self.spec.task, tasks=[t for ids in sources.values() for t in ids])
        wheels.put_tasks(package, sources)
        return task

    def _train(self, library: RLLibrary, install: isaaclab_cli.IsaacLabInstall, device: str,
               cwd: Path) -> tuple[int, Path | None]:
        """Train (resuming from ``resumeCheckpointUri`` when set); export the final policy where supported."""
        spec = self.spec.replace(task=self.task)
        resume = self._fetch(spec.resume_checkpoint_uri, "resume")
        max_iterations = spec.max_iterations
        point = self._staged_resume_point(library)
        warm = resume is not None and point is None and spec.init == warm_start.WARM_START
        if warm:  # weights only: a fresh optimizer, the iteration count from 0 (a retried attempt resumes as usual)
            resume = warm_start.weights_only(resume, self.workdir / "inputs" / "warm-start")
            self.say(f"Warm-start from {spec.resume_checkpoint_uri}: its weights, a fresh optimizer, iteration 0")
        if point is not None and point.complete:
            self.say(f"The final checkpoint {point.uri} is staged already; nothing left to train")
            return 0, None
        if point is not None:  # a retried attempt: continue from the latest staged checkpoint
            resume = sync.fetch_checkpoint(point, self.workdir / "inputs" / "resume")
            max_iterations = point.remaining
            self.say(f"Attempt {launch.job_attempt()}: resuming from {point.uri} for the remaining "
                     f"{max_iterations} of {spec.max_iterations} iterations")
        if install.major >= 3:
            if resume is not None and point is None and not warm:
                max_iterations = library.resume_max_iterations(resume, max_iterations)
            cmd = launch.launch_command(
                isaaclab_cli.train_command(spec, library, device, resume, max_iterations, python=self.env.python),
                spec.gpus_per_node, self.node)
        else:
            if resume is not None:  # where the 2.x script looks for it
                resume = library.stage_resume_v2(resume, cwd)
            cmd = isaaclab_cli.train_command_v2(spec, library, device, install.root, resume)
        self.progress.update(state="running", iteration=0, maxIterations=max_iterations)
        if self.node.uploads:  # checkpoints reach staging while training runs, so an interruption loses little
            self._start_checkpoint_sync(library, cwd)
        wanted = os.environ.get(EXPORT_ENV, "1") != "0" and library.exports_policy
        early = None
        if install.major >= 3 and wanted and self.node.uploads and self._export_early(device):
            early = export.EarlyExport(library, lambda: library.find_run_dir(cwd), self.workdir / "export-warmup"
                                       ).start()  # its imports and warm-up run while Isaac Lab trains
        try:
            exit_code = self._stream(cmd, cwd, self._child_env(device), library.parse_progress)
        finally:
            self._stop_checkpoint_sync()
        run_dir = library.find_run_dir(cwd)
        if (exit_code == 0 and not self._terminated and run_dir is not None and install.major >= 3 and wanted
                and self.node.uploads):
            early = self._start_final_export(library, run_dir, early)
        if early is not None:
            early.cancel()
        return exit_code, run_dir

    def _start_checkpoint_sync(self, library: RLLibrary, cwd: Path) -> None:
        """Start staging checkpoints and event files while training runs."""
        self.report.sync = sync.CheckpointSync(cwd / "logs", self.staging, library.CHECKPOINT_PATTERNS,
                                               self.workdir / "sync",
                                               events_key=lambda path: self._event_key(library, cwd, path)).start()

    def _stop_checkpoint_sync(self) -> None:
        """Flush and stop the checkpoint sync (if running); remember what it staged, so the upload skips it."""
        checkpoint_sync, self.report.sync = self.report.sync, None
        if checkpoint_sync is None:
            return
        with self.timings.phase("upload"):
            checkpoint_sync.stop(timeout=SYNC_FLUSH_TIMEOUT_S)
        self.say(f"Checkpoint sync staged {len(checkpoint_sync.uploaded)} file(s), {checkpoint_sync.errors} error(s)")
        self._synced = checkpoint_sync.staged()
        self._synced_events = checkpoint_sync.staged_events()

    def _start_final_export(self, library: RLLibrary, run_dir: Path,
                            early: export.EarlyExport | None) -> export.EarlyExport | None:
        """Start exporting the run's last checkpoint beside the upload; return ``early`` if it is still to cancel."""
        last = base.latest_checkpoint(library, run_dir)
        if last is None:
            self.say("No checkpoint to export")
            return early
        if early is not None:  # warmed up while training: the final export starts now, beside the upload
            self._export = early.finish(run_dir, last)
            return None
        # in this process, no simulator: it runs while the run folder uploads
        self._export = export.BackgroundExport(library, run_dir, last).start()
        return None

    def _resolve_device(self) -> str:
        """The spec's device, ``auto`` resolved: ``cuda:0`` when the GPU monitor's NVML sees this job's GPUs (no
        torch import, 2-3 s on a GPU host, for a question NVML has answered), else ``isaaclab_cli.resolve_device``
        (torch), also when ``CUDA_VISIBLE_DEVICES`` names GPUs in a way NVML's indices cannot follow ("", -1, UUIDs).
        """
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        numeric = visible is None or (visible.strip() != "" and all(
            p.strip().isdigit() for p in visible.split(",")))
        if self.spec.device == "auto" and self.gpu is not None and self.gpu.gpus and numeric:
            return "cuda:0"
        return isaaclab_cli.resolve_device(self.spec.device)

    @staticmethod
    def _export_early(device: str) -> bool:
        """Whether the export starts with training (``export.EarlyExport``): on a GPU, where the runner's CPU is
        idle while Isaac Lab trains; not on a CPU, where it would take cores from the simulation.
        ``ISAACLAB_RUNNER_EXPORT_EARLY`` (1/0) decides instead when set."""
        setting = os.environ.get(EXPORT_EARLY_ENV, "")
        return setting == "1" if setting in ("0", "1") else device.startswith("cuda")

    def _finish_export(self, library: RLLibrary, run_dir: Path, run_uri: str) -> None:
        """Wait for the policy export and stage ``exported/policy.{pt,onnx}`` (what robotics teams deploy).

        The export runs in this process, which does not see the env package (it is in the job's environment):
        if the actor could not be rebuilt here (a model class of the package, say), it is tried again with the
        job environment's Python, still without a simulator. A failed export never fails the job: the
        checkpoints are published without ``exported/``.
        """
        job, self._export = self._export, None
        if job is None:
            return
        try:
            paths = job.wait(EXPORT_TIMEOUT_S)
            warmed = (f"; started with training, {job.warmed} warm-up export(s)"
                      if isinstance(job, export.EarlyExport) else "")
            self.say(f"Exported {', '.join(p.name for p in paths)} from {job.checkpoint.name} in {job.seconds:.1f}s "
                     f"(no simulator; beside the upload{warmed})")
        except export.ExportError as exc:
            self.say(f"WARNING: exporting {job.checkpoint.name} failed: {exc}")
            if self.env.python == packages.JobEnvironment.current().python or not self._export_in_job_env(
                    library, job.checkpoint, run_dir):
                self.say("The checkpoints are published without exported/")
                return
        for path in sorted((run_dir / export.EXPORT_DIR).glob("*")):
            if path.is_file():
                storage.upload(path, storage.join(run_uri, export.EXPORT_DIR, path.name))

    def _export_in_job_env(self, library: RLLibrary, checkpoint: Path, run_dir: Path) -> bool:
        """``python -m isaaclab_runner.export`` with the job environment's Python (it sees the env package)."""
        cmd = [str(self.env.python), "-m", "isaaclab_runner.export", "--rl_library", library.NAME,
               "--checkpoint", str(checkpoint), "--run_dir", str(run_dir)]
        return self._stream(cmd, run_dir, self._child_env("cpu"), None) == 0

    def _evaluate(self, library: RLLibrary, install: isaaclab_cli.IsaacLabInstall, device: str,
                  cwd: Path) -> tuple[int, Path | None]:
        """Run exactly ``numEpisodes`` episodes of the checkpoint (evaluate.py); results in ``cwd/run``."""
        if install.major < 3:
            raise packages.PackageError("mode 'evaluate' needs Isaac Lab 3 (its Python API counts episodes); this "
                                        "image has Isaac Lab 2.x: use mode 'play' or an Isaac Lab 3 image")
        checkpoint = self._require_checkpoint()
        out = cwd / "run"
        cmd = isaaclab_cli.policy_command(self.spec.replace(task=self.task), library, device, checkpoint, out,
                                          num_episodes=self.spec.num_episodes, export=library.exports_policy,
                                          python=self.env.python)
        self.progress.update(state="running", episodes=0, numEpisodes=self.spec.num_episodes)
        return self._stream(cmd, cwd, self._child_env(device), evaluate.parse_progress), out

    def _play(self, library: RLLibrary, install: isaaclab_cli.IsaacLabInstall, device: str,
              cwd: Path) -> tuple[int, Path | None]:
        """Play the policy for ``PLAY_STEPS`` env steps (one video clip of that length when asked)."""
        checkpoint = self._require_checkpoint()
        spec = self.spec.replace(task=self.task)
        out = cwd / "run"
        if install.major < 3:
            cmd = isaaclab_cli.play_command_v2(spec, library, device, install.root, checkpoint, PLAY_STEPS)
        else:
            cmd = isaaclab_cli.policy_command(spec, library, device, checkpoint, out, num_steps=PLAY_STEPS,
                                              export=library.exports_policy, video_length=PLAY_STEPS,
                                              python=self.env.python)
        self.progress.update(state="running", episodes=0)
        return self._stream(cmd, cwd, self._child_env(device), evaluate.parse_progress), out

    def _staged_checkpoints(self, checkpoints: list[Path], run_dir: Path, run_uri: str) -> dict[str, str]:
        """Where each checkpoint is in staging (relative to it): ``checkpoints/...`` if synced, else ``run/...``."""
        prefix = self.staging.rstrip("/") + "/"
        staged = {}
        for path in checkpoints:
            rel = path.relative_to(run_dir).as_posix()
            uri = self._synced.get(path) or (None if self._terminated else storage.join(run_uri, rel))
            if uri is not None:
                staged[rel] = uri.removeprefix(prefix)
        return staged

    def _staged_resume_point(self, library: RLLibrary) -> sync.ResumePoint | None:
        """On a retried attempt (Batch or local), the latest checkpoint an earlier attempt staged."""
        if launch.job_attempt() < 2 or not library.resumes_by_iteration:
            return None
        return sync.find_resume_checkpoint(self.staging, self.spec.max_iterations, library.CHECKPOINT_REGEX)

    def _require_checkpoint(self) -> Path:
        path = self._fetch(self.spec.checkpoint_uri, "checkpoint")
        if path is None:
            raise packages.PackageError(f"mode {self.spec.mode!r} needs a checkpoint: set checkpointPath, "
                                        "policyS3Uri or policyPath in the conf")
        return path

    def _fetch(self, uri: str | None, kind: str) -> Path | None:
        """Download a checkpoint into ``inputs/<kind>/`` keeping its name (libraries parse numbers from it)."""
        if not uri:
            return None
        with self.timings.phase("fetch"):
            path = storage.download(uri, self.workdir / "inputs" / kind / uri.rstrip("/").rsplit("/", 1)[-1])
        self.say(f"Fetched {kind} {uri}")
        return path

    def _stream(self, cmd: list[str], cwd: Path, env: dict[str, str], parse: ProgressParser | None) -> int:
        """Run ``cmd``, copying its output line by line and turning it into progress."""
        self.say("Running: " + " ".join(cmd))
        start = time.monotonic()
        first: float | None = None  # when Isaac Lab reported its first iteration (or episode batch)
        with self.timings.phase("training" if parse is not None else "export"):
            self._child = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                           text=True, bufsize=1)
            assert self._child.stdout is not None
            for line in self._child.stdout:
                self.report.write(line)
                if self._out_of_memory is None and OUT_OF_MEMORY.search(line):
                    self._out_of_memory = line.strip()[:200]
                if EXCEPTION_LINE.match(line):
                    self._last_exception = line.strip()[:1000]
                if parse is not None and parse(line, self.progress):
                    first = time.monotonic() if first is None else first
                    self.progress["elapsedS"] = round(time.monotonic() - start, 1)
                    self.report.write_progress()
            code = self._child.wait()
        if parse is not None:  # start → first iteration is Isaac Lab's start-up, not training
            self.timings.move("training", "isaacLabStart", (first or time.monotonic()) - start)
        self.say(f"isaaclab exited with {code} after {time.monotonic() - start:.1f}s")
        return code

    def _start_gpu_monitor(self) -> None:
        """Sample the GPUs (gpu_monitor.py) and, on Batch, send them to CloudWatch; nothing without a GPU."""
        publish = cloudwatch.MetricPublisher(self.spec.job_id) if cloudwatch.enabled() else None
        try:
            self.gpu = gpu_monitor.GpuMonitor.start_if_present(
                self.workdir / "gpu.csv", node=self.node.node_rank, publish=publish,
                step=lambda: int(self.progress.get("iteration") or 0))
        except Exception as exc:  # a monitor that cannot start must not stop the job
            self.say(f"WARNING: GPU monitor not started: {exc}")
        if self.gpu is not None:
            self.say(f"GPU monitor: {len(self.gpu.gpus)} GPU(s) every {self.gpu.interval_s:g}s"
                     + (f", to CloudWatch ({publish.namespace})" if publish else ""))

    def _stop_gpu_monitor(self, result: dict[str, Any]) -> None:
        """Stop sampling; stage gpu.csv as ``gpu/node-<rank>.csv`` (every node) and put the peak in the result."""
        monitor, self.gpu = self.gpu, None
        if monitor is None:
            return
        try:
            stats = monitor.stop()
            uri = storage.join(self.staging, staging_layout.GPU_DIR, f"node-{self.node.node_rank}.csv")
            storage.upload(monitor.path, uri)
            if stats:
                result["gpu"] = stats
                self.say(f"GPU: peak {stats['peakMemoryMiB'] / 1024:.1f} of {stats['memoryTotalMiB'] / 1024:.0f} GiB, "
                         f"mean utilisation {stats['meanUtilizationPct']:.0f}% ({stats['samples']} samples)")
        except Exception as exc:  # the samples are a report
            self.say(f"WARNING: GPU samples not staged: {exc}")

    @staticmethod
    def _event_key(library: RLLibrary, cwd: Path, path: Path) -> str | None:
        """A live event file's staging key: where the final upload puts it (``run/<path in the run folder>``)."""
        run_dir = library.find_run_dir(cwd)
        if run_dir is None or not path.is_relative_to(run_dir):
            return None  # an earlier attempt's folder (staged by that attempt), or not known yet
        return f"{sync.RUN_DIR}/{path.relative_to(run_dir).as_posix()}"

    def _earlier_timings(self) -> list[dict[str, Any]]:
        """The timings of the attempts before this one, from the result.json the last one staged."""
        if self.timings.attempt < 2 or not self.node.uploads:
            return []
        try:
            uri = storage.join(self.staging, staging_layout.RESULT)
            path = storage.download(uri, self.workdir / "earlier-result.json")
            earlier = json.loads(path.read_text()).get("timings", {}).get("attempts", [])
        except Exception as exc:  # a missing or unreadable result: this attempt's timings still stand
            log.warning("timings of earlier attempts not read: %s", exc)
            return []
        return [a for a in earlier if isinstance(a, dict) and a.get("attempt", 0) < self.timings.attempt]

    def _child_env(self, device: str) -> dict[str, str]:
        env = isaaclab_cli.child_env(device, self.task_modules)
        if self.asset_root is not None:  # read by isaaclab.utils.assets in every rank torch.distributed starts
            env[asset_mirror.ASSET_ROOT_ENV] = str(self.asset_root)
        return env

    def say(self, message: str) -> None:
        """Print a runner message to the log (``StagingReporter.say``)."""
        self.report.say(message)

    def _on_sigterm(self, signum: int, frame: object) -> None:
        """Stop Isaac Lab and let ``run`` stage what exists (Batch sends SIGTERM 30 s before SIGKILL).

        Nothing is uploaded here: the sync thread may hold its lock; ``run`` flushes after Isaac Lab exits.
        """
        self._terminated = True
        self.say("SIGTERM received: stopping Isaac Lab and staging what exists")
        child = self._child
        if child is not None and child.poll() is None:
            # Isaac Lab 3 catches SIGTERM and trains on; SIGINT ends its learn loop cleanly within an iteration
            child.send_signal(signal.SIGINT)
            timer = threading.Timer(STOP_GRACE_S, lambda: child.poll() is None and child.kill())
            timer.daemon = True
            timer.start()
