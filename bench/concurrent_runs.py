#!/usr/bin/env python
"""Benchmark and load check: concurrent DAG runs on the local backend, through a real Airflow (issue 13 item 4).

It starts ``airflow standalone`` (API server, scheduler with the LocalExecutor, DAG processor, triggerer) in a
private home, with a snapshot of the DAG, the plugins and the schemas taken at start (other edits of the working
tree cannot change the code under test mid-run), and packages the example env
(``examples/envs/custom_cartpole``) in two versions that differ in what a job can observe:

* version A: ``1.0.0+a``, ``BENCH_VARIANT = "a"``, ``episode_length_s = 7.0`` (the example's own);
* version B: ``1.0.0+b``, ``BENCH_VARIANT = "b"``, ``episode_length_s = 6.0``.

Then, triggering through the REST API (``POST /api/v2/dags/isaac-lab-training/dagRuns``), rsl_rl, 16 envs,
3 iterations on the CPU:

1. warm-up: one run of each version at once, not timed in the ratios (the private Warp kernel cache and the wheel
   cache fill; every timed run then starts from the same cache state);
2. baseline: ONE run alone (version A);
3. load: ``--runs`` (8) runs at once, half A, half B; half of them (two of each version) with their own
   ``outputS3Path``, the others on the deployment's default output (``{pipeline home}/outputs``).

Each run must end ``success`` with every task succeeded on its first try, and must have published its own
outputs, as its conf and run id say (``{output}/{job uuid}/``): manifest.json listing every file with a matching
sha256, checkpoints, metrics.csv, job-result.json with ``status: succeeded``, its own ``jobId`` and its version's
``envPackage.version``; runner-log.txt naming its version (and not the other), env-params.txt its version's
episode length, the job's own venv holding its version's module (``BENCH_VARIANT``), the runner's base venv
neither. The jobs' time intervals (from the job folders) show how many ran at once.

Printed: per-run durations (trigger → end, start → end, the job itself, its ``isaaclab train`` process as the
runner logs it, Airflow's share: trigger → end less the job), the wall time of the
concurrent runs (first trigger → last run's end), and side by side ``(N concurrent wall) / (1 alone)`` and the
throughput ``N × (1 alone) / (N concurrent wall)``; peak memory (PSS) of the jobs and of Airflow, the lowest
MemAvailable. The raw JSON and the printed text go to ``--out`` (``concurrent_runs.json``, ``.txt``; ``--name``
changes the stem), and when a check failed the last 256 KB of standalone's log (``.standalone.log``) too; the
private home is kept then (and always with ``--scratch`` or ``--keep``).

Airflow settings (``airflow standalone`` forces the LocalExecutor; nothing here needs a change of the DAG):

* ``AIRFLOW__CORE__PARALLELISM=16``: the LocalExecutor's task slots (it forks that many workers at once). A run
  of one trial has at most one task that holds a slot at any time (its steps are a chain, ``wait_for_job``
  defers to the triggerer and holds none), so N runs need N slots; 16 leaves room and forks half of the
  default 32's idle workers.
* ``AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG=16``: the DAG sets no ``max_active_runs``, so this default caps it;
  it must be >= N (written out so the setting is visible).
* The DAG's ``max_active_tasks=4`` counts per DAG run in Airflow 3 (the scheduler counts task instances per
  run), so it does not limit concurrent runs; the triggerer's capacity (1000) and the default pool (128 slots,
  deferred tasks not counted) neither.
* ``AIRFLOW__API__BASE_URL``: the server listens on a free port, and task processes reach the execution API at
  ``{base_url}/execution/`` (the default assumes port 8080); the log servers of the scheduler and the triggerer
  get free ports too (``AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT``, ``..._TRIGGER_LOG_SERVER_PORT``).
* ``WARP_CACHE_PATH`` in the private home: the "host" kernel cache starts empty and is not the user's (the
  warm-up's two jobs compile into it at once).

Run: ``flock /tmp/heavy.lock .venvs/airflow/bin/python bench/concurrent_runs.py [--runs 8]
[--out bench/results/cpu-2026-11-30]``. Exit code 0 only when every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "vams_bridge"))
from vams_bridge.airflow_api import HttpApi  # noqa: E402  (one REST client: the bridge's and the CLI's)

AIRFLOW_BIN = REPO / ".venvs" / "airflow" / "bin"
ISAACLAB_PYTHON = REPO / ".venvs" / "isaaclab" / "bin" / "python"
EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"
DAG_ID = "isaac-lab-training"
TASK = "Isaac-Custom-Cartpole-Direct"
DIST = "isaaclab-custom-cartpole"
VARIANTS = {"a": 7.0, "b": 6.0}  # variant → episode_length_s
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")
SKIPPABLE = {"compare_trials"}  # a run without a sweep skips its report step


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------- set-up


def snapshot(home: Path) -> Path:
    """Copy the DAG file, the plugins and the schemas into ``home/src``; return it."""
    src = home / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    (src / "dags").mkdir(parents=True)
    shutil.copy2(REPO / "dags" / "isaac_lab_training.py", src / "dags" / "isaac_lab_training.py")
    shutil.copytree(REPO / "plugins", src / "plugins", ignore=ignore)
    shutil.copytree(REPO / "include" / "schemas", src / "include" / "schemas", ignore=ignore)
    return src


def package_variant(home: Path, variant: str) -> tuple[Path, str]:
    """The example env as version ``1.0.0+<variant>``, packaged like ``package_env`` (the guide's tar.gz of the
    project folder, build leftovers left out); return the archive and its version."""
    version = f"1.0.0+{variant}"
    project = home / "envs" / variant / "custom_cartpole"
    shutil.copytree(EXAMPLE_ENV, project, ignore=shutil.ignore_patterns(
        "build", "*.egg-info", "__pycache__", ".pytest_cache"))
    pyproject = project / "pyproject.toml"
    pyproject.write_text(_replace_once(pyproject.read_text(), 'version = "1.0.0"', f'version = "{version}"'))
    init = project / "custom_cartpole" / "__init__.py"
    init.write_text(_replace_once(init.read_text(), 'TASK_ID = "', f'BENCH_VARIANT = "{variant}"\n\nTASK_ID = "'))
    cfg = project / "custom_cartpole" / "cartpole_env_cfg.py"
    cfg.write_text(_replace_once(cfg.read_text(), "episode_length_s = 7.0",
                                 f"episode_length_s = {VARIANTS[variant]}"))
    archive = home / "pipeline" / "assets" / f"cartpole-{variant}" / "custom_cartpole.tar.gz"
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(project, arcname=project.name)
    return archive, version


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise SystemExit(f"the example env changed: {old!r} is not in it exactly once")
    return text.replace(old, new)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def airflow_env(home: Path, src: Path, port: int) -> dict[str, str]:
    """The environment of ``airflow standalone``: a private home, the snapshot, the concurrency settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW", "ISAACLAB", "WARP_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update({
        "PATH": f"{AIRFLOW_BIN}:{env.get('PATH', '')}",  # standalone starts its components as `airflow ...`
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(src / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(src / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(src / "plugins"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        # the scheduler's and triggerer's log servers (8793, 8794 by default) on free ports too
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__PARALLELISM": "16",
        "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "16",
        "ISAACLAB_PIPELINE_HOME": str(home / "pipeline"),
        "ISAACLAB_PIPELINE_SCHEMAS_DIR": str(src / "include" / "schemas"),
        "AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON": str(ISAACLAB_PYTHON),
        "WARP_CACHE_PATH": str(home / "warp"),
    })
    return env


def get(api: HttpApi, path: str) -> Any:
    """GET a version-less REST path; the client retries a busy server (a loaded 2-core box answers slowly)."""
    answer = api.call("GET", path)
    if not answer.ok:
        raise RuntimeError(f"GET {path}: HTTP {answer.status} {answer.detail()}")
    return answer.data


class Airflow:
    """``airflow standalone`` in its own session; stopped (the whole session) on exit."""

    def __init__(self, env: dict[str, str], home: Path, port: int) -> None:
        self.env, self.home, self.port = env, home, port
        self.log_path = home / "standalone.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.api = HttpApi(f"http://127.0.0.1:{port}", timeout_s=30.0)

    def __enter__(self) -> Airflow:
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([str(AIRFLOW_BIN / "airflow"), "standalone"], env=self.env, cwd=self.home,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        started = time.monotonic()
        try:
            while not self._ready():
                if self.proc.poll() is not None:
                    raise RuntimeError(f"airflow standalone exited ({self.proc.returncode}):\n{self.tail()}")
                if time.monotonic() > started + 600:
                    raise RuntimeError(f"airflow standalone not ready after 600 s:\n{self.tail()}")
                time.sleep(3)
        except BaseException:
            self.__exit__()
            raise
        self.ready_s = time.monotonic() - started
        return self

    def _ready(self) -> bool:
        try:
            health = self.api.call("GET", "/monitor/health")
            if not health.ok or not all(health.data.get(c, {}).get("status") == "healthy" for c in COMPONENTS):
                return False
            dag = self.api.call("GET", f"/dags/{DAG_ID}")
            return dag.ok and dag.data.get("is_paused") is False
        except (OSError, RuntimeError, AttributeError):  # not up yet: no connection, no token, no JSON
            return False

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def __exit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


# ----------------------------------------------------------------------------------------------- measurement


def _proc_sessions() -> dict[int, list[int]]:
    """Session id → pids, from /proc."""
    sessions: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(") ", 1)[1].split()
        sessions.setdefault(int(fields[3]), []).append(int(entry.name))  # field 6 of stat: the session id
    return sessions


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Sampler(threading.Thread):
    """Every ``interval`` s: PSS of the running jobs (each job is its own session) and of Airflow's session,
    MemAvailable, the load average, how many jobs run."""

    def __init__(self, jobs_root: Path, airflow_sid: int, interval: float = 2.0) -> None:
        super().__init__(daemon=True, name="sampler")
        self.jobs_root, self.airflow_sid, self.interval = jobs_root, airflow_sid, interval
        self.stop = threading.Event()
        self.phase = "idle"
        self.peaks: dict[str, dict[str, float]] = {}

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self._sample()
            except Exception as exc:  # a sample must never end the benchmark
                log(f"sampler: {type(exc).__name__}: {exc}")

    def _sample(self) -> None:
        job_sids = set()
        for pid_file in self.jobs_root.glob("*/pid"):
            with contextlib.suppress(OSError, ValueError):
                if not (pid_file.parent / "exit_code").exists():
                    job_sids.add(int(pid_file.read_text()))
        sessions = _proc_sessions()
        jobs_kb = sum(_pss_kb(p) for sid in job_sids for p in sessions.get(sid, []))
        airflow_kb = sum(_pss_kb(p) for p in sessions.get(self.airflow_sid, []))
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available_mb = int(meminfo["MemAvailable"].split()[0]) / 1024
        load = float(Path("/proc/loadavg").read_text().split()[0])
        peak = self.peaks.setdefault(self.phase, {"jobs_pss_mb": 0.0, "airflow_pss_mb": 0.0,
                                                  "min_mem_available_mb": float("inf"), "max_load1": 0.0,
                                                  "max_running_jobs": 0})
        peak["jobs_pss_mb"] = max(peak["jobs_pss_mb"], round(jobs_kb / 1024))
        peak["airflow_pss_mb"] = max(peak["airflow_pss_mb"], round(airflow_kb / 1024))
        peak["min_mem_available_mb"] = min(peak["min_mem_available_mb"], round(available_mb))
        peak["max_load1"] = max(peak["max_load1"], load)
        peak["max_running_jobs"] = max(peak["max_running_jobs"], len(job_sids))


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


@dataclass
class Run:
    run_id: str
    variant: str
    version: str
    asset: Path
    output_root: Path | None  # None: the deployment's default output
    job_id: str = ""  # the pipeline's job UUID of the run (isaaclab_pipeline.config.job_uuid)
    conf: dict[str, Any] = field(default_factory=dict)
    state: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def make_conf(run: Run, num_envs: int, iterations: int) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "trainingConfig": {"mode": "train", "task": TASK, "rlLibrary": "rsl_rl", "numEnvs": num_envs,
                           "maxIterations": iterations},
        "computeConfig": {"numNodes": 1},
        "inputS3AssetFilePath": f"file://{run.asset}",
    }
    if run.output_root is not None:
        conf["outputS3Path"] = f"file://{run.output_root}"
    return conf


def run_phase(af: Airflow, sampler: Sampler, name: str, runs: list[Run], timeout_s: float) -> dict[str, Any]:
    """Trigger every run at once (one POST each, back to back), wait until all are over; return the timings."""
    sampler.phase = name
    log(f"{name}: triggering {len(runs)} run(s)")
    t0 = time.time()
    for run in runs:
        answer = af.api.call("POST", f"/dags/{DAG_ID}/dagRuns",
                             {"dag_run_id": run.run_id, "logical_date": None, "conf": run.conf})
        if answer.status != 200:
            raise RuntimeError(f"trigger of {run.run_id} answered {answer.status}: {answer.detail()}")
    t_triggered = time.time()
    deadline = time.monotonic() + timeout_s
    pending = {r.run_id: r for r in runs}
    last = ""
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: runs not over after {timeout_s:.0f} s: {sorted(pending)}")
        time.sleep(5)
        for run_id, run in list(pending.items()):
            data = get(af.api, f"/dags/{DAG_ID}/dagRuns/{run_id}")
            if data["state"] in ("success", "failed"):
                run.state = data["state"]
                run.info = {k: data.get(k) for k in ("queued_at", "start_date", "end_date", "conf")}
                del pending[run_id]
                log(f"{name}: {run_id} {run.state}")
        note = f"{name}: {len(runs) - len(pending)}/{len(runs)} over"
        if note != last:
            last = note
            log(note)
    t_seen = time.time()
    sampler.phase = "idle"
    queued = [_ts(r.info.get("queued_at")) for r in runs]
    ends = [_ts(r.info.get("end_date")) for r in runs]
    first_q = min(q for q in queued if q is not None)
    last_end = max(e for e in ends if e is not None)
    return {"runs": len(runs), "triggered_at": t0, "trigger_calls_s": round(t_triggered - t0, 2),
            "wall_s": round(last_end - first_q, 1), "wall_client_s": round(t_seen - t0, 1)}


def job_interval(jobs_root: Path, job_id: str) -> tuple[float | None, float | None]:
    """When the job started (its spec.json written at submit) and ended (its exit_code written)."""
    jdir = jobs_root / job_id
    start = (jdir / "spec.json").stat().st_mtime if (jdir / "spec.json").exists() else None
    end = (jdir / "exit_code").stat().st_mtime if (jdir / "exit_code").exists() else None
    return start, end


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = best = 0
    for _, step in events:
        now += step
        best = max(best, now)
    return best


# ------------------------------------------------------------------------------------------------------ checks


def check_run(af: Airflow, run: Run, home: Path, other_versions: set[str]) -> None:
    """Every check of one finished run; problems go to ``run.problems``; facts to ``run.info``."""
    if run.state != "success":
        run.problems.append(f"run state {run.state}")
    _check_tasks(af, run)
    out = _check_published_path(af, run, home)
    if out is None or not _check_manifest(run, out) or run.problems:
        return
    _check_job_result(run, out, other_versions)
    _check_job_venv(run, home)


def _check_tasks(af: Airflow, run: Run) -> None:
    """Every task succeeded (or was skipped where it may be) on its first try."""
    tis = get(af.api, f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances")["task_instances"]
    tasks = {}
    for ti in tis:
        tasks[ti["task_id"]] = {"state": ti["state"], "try_number": ti["try_number"],
                                "duration_s": _r(ti.get("duration"))}
        ok = ti["state"] == "success" or (ti["task_id"] in SKIPPABLE and ti["state"] == "skipped")
        if not ok:
            run.problems.append(f"task {ti['task_id']} ended {ti['state']}")
        if ti["try_number"] > 1:
            run.problems.append(f"task {ti['task_id']} needed try {ti['try_number']}")
    run.info["tasks"] = tasks


def _check_published_path(af: Airflow, run: Run, home: Path) -> Path | None:
    """Where the pipeline says it published, if that is where it must have (else None, with the problem)."""
    xcom = get(af.api, f"/dags/{DAG_ID}/dagRuns/{run.run_id}/taskInstances/publish_outputs/xcomEntries/return_value"
                  "?map_index=0")
    value = xcom.get("value")
    published = json.loads(value) if isinstance(value, str) else value
    root = run.output_root or home / "pipeline" / "outputs"
    expected = root / run.job_id
    out = Path(str(published.get("outputUri", "")).removeprefix("file://"))
    run.info["output_path"] = str(out)
    if out.resolve() != expected.resolve():
        run.problems.append(f"published to {out}, expected {expected}")
        return None
    return out


def _check_manifest(run: Run, out: Path) -> bool:
    """The manifest names the job and lists exactly the published files, with their sha256, checkpoints and the
    run's own files among them; False if there is no manifest."""
    p = run.problems
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file():
        p.append("no manifest.json")
        return False
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("jobId") != run.job_id:
        p.append(f"manifest jobId {manifest.get('jobId')}, expected {run.job_id}")
    entries = manifest.get("files", [])
    listed = {e["path"]: e for e in entries}
    for rel, entry in listed.items():
        path = out / rel
        if not path.is_file():
            p.append(f"manifest lists {rel}, absent")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != entry.get("sha256"):
            p.append(f"{rel}: sha256 differs from the manifest")
    on_disk = {q.relative_to(out).as_posix() for q in out.rglob("*") if q.is_file()} - {"manifest.json"}
    if on_disk - set(listed):
        p.append(f"files not in the manifest: {sorted(on_disk - set(listed))}")
    checkpoints = sorted(k for k in listed if re.fullmatch(r"checkpoints/model_\d+\.pt", k))
    run.info["checkpoints"] = checkpoints
    if not checkpoints:
        p.append("no checkpoints/model_*.pt published")
    for name in ("metrics.csv", "job-result.json", "runner-log.txt", "env-params.txt", "training-config.json"):
        if name not in listed:
            p.append(f"{name} not published")
    return True


def _check_job_result(run: Run, out: Path, other_versions: set[str]) -> None:
    """job-result.json, the runner's log, the env params and metrics.csv are the run's own (its variant and
    version)."""
    p = run.problems
    result = json.loads((out / "job-result.json").read_text())
    run.info["job_result"] = {k: result.get(k) for k in ("status", "jobId", "envPackage", "iterations", "seed")}
    if result.get("status") != "succeeded":
        p.append(f"job-result status {result.get('status')}")
    if result.get("jobId") != run.job_id:
        p.append(f"job-result jobId {result.get('jobId')}, expected {run.job_id}")
    got = (result.get("envPackage") or {}).get("version")
    if got != run.version:
        p.append(f"envPackage.version {got}, expected {run.version}")
    runner_log = (out / "runner-log.txt").read_text(errors="replace")
    m = re.search(r"isaaclab exited with 0 after ([0-9.]+)s", runner_log)  # the Isaac Lab process alone
    run.info["isaaclab_s"] = float(m.group(1)) if m else None
    if f"Installed {DIST} {run.version}:" not in runner_log:
        p.append(f"runner-log.txt does not name {DIST} {run.version}")
    for other in other_versions - {run.version}:
        if other in runner_log:
            p.append(f"runner-log.txt names the other version {other}")
    params = (out / "env-params.txt").read_text(errors="replace")
    m = re.search(r"^episode_length_s:\s*([0-9.]+)", params, re.M)
    run.info["episode_length_s"] = float(m.group(1)) if m else None
    if run.info["episode_length_s"] != VARIANTS[run.variant]:
        p.append(f"env-params.txt episode_length_s {run.info['episode_length_s']}, expected "
                 f"{VARIANTS[run.variant]}")
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    run.info["metrics_rows"] = len(rows) - 1
    if len(rows) < 2:
        p.append("metrics.csv has no rows")


def _check_job_venv(run: Run, home: Path) -> None:
    """The job's own venv holds its version's module."""
    inits = list((home / "pipeline" / "jobs" / run.job_id / "work" / "venv").glob(
        "lib/python3*/site-packages/custom_cartpole/__init__.py"))
    if len(inits) != 1:
        run.problems.append(f"the job's venv holds {len(inits)} custom_cartpole modules")
    elif f'BENCH_VARIANT = "{run.variant}"' not in inits[0].read_text():
        run.problems.append(f"the job's venv has another variant than {run.variant!r}")


def base_venv_clean() -> list[str]:
    """Our variants must never land in the runner's own (shared) site-packages."""
    found = sorted(str(p) for p in (ISAACLAB_PYTHON.parents[1] / "lib").glob(
        "python3*/site-packages/isaaclab_custom_cartpole-1.0.0+[ab].dist-info"))
    return [f"a variant is installed in the runner's base venv: {f}" for f in found]


# -------------------------------------------------------------------------------------------------------- main


def describe(runs: list[Run], jobs_root: Path) -> list[dict[str, Any]]:
    rows = []
    for run in runs:
        queued, start, end = (_ts(run.info.get(k)) for k in ("queued_at", "start_date", "end_date"))
        j_start, j_end = job_interval(jobs_root, run.job_id)
        run_s = end - queued if end and queued else None
        job_s = j_end - j_start if j_end and j_start else None
        rows.append({"run_id": run.run_id, "variant": run.variant, "version": run.version,
                     "output": "own" if run.output_root else "default", "state": run.state,
                     "trigger_to_end_s": _r(run_s), "start_to_end_s": _r(end - start if end and start else None),
                     "job_s": _r(job_s), "airflow_s": _r(run_s - job_s if run_s and job_s else None),
                     "job_start": j_start, "job_end": j_end, "job_id": run.job_id,
                     "ok": not run.problems, "problems": run.problems, **run.info})
    return rows


def main() -> int:
    args = _parse_args()
    home = args.scratch or Path(tempfile.mkdtemp(prefix="bench-concurrent-runs-"))
    home.mkdir(parents=True, exist_ok=True)
    log(f"private home: {home}")
    src = snapshot(home)
    sys.path.insert(0, str(src / "plugins"))
    assets = {v: package_variant(home, v) for v in VARIANTS}
    versions = {version for _, version in assets.values()}
    port = free_port()
    n = args.runs
    phases = _phases(args, assets, home)
    summary = _summary_head(args, assets, home, src, port)
    ok = False
    try:
        with Airflow(airflow_env(home, src, port), home, port) as af:
            log(f"airflow standalone ready on port {port} in {af.ready_s:.0f} s")
            _run_phases(af, phases, summary, home, versions, args.timeout_s)
        summary["base_venv_problems"] = base_venv_clean()
        all_runs = [r for _, runs in phases for r in runs]
        ids = [r.job_id for r in all_runs]
        summary["distinct_job_ids"] = len(set(ids)) == len(ids)
        # the N jobs must really have run at once (else a setting throttled them and the ratio means little)
        summary["all_at_once"] = summary["phases"]["concurrent"]["max_jobs_at_once"] == n
        ok = (all(not r.problems for r in all_runs) and not summary["base_venv_problems"]
              and summary["distinct_job_ids"] and summary["all_at_once"])
    finally:
        summary["all_checks_passed"] = ok
        _write_results(args, summary, n, ok, home)
    return 0 if ok else 1


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--timeout-s", type=float, default=2400.0, help="per phase")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cpu")
    parser.add_argument("--scratch", type=Path, default=None, help="the private home (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the private home")
    parser.add_argument("--name", default="concurrent_runs", help="the stem of the result files in --out")
    return parser.parse_args()


def _phases(args: argparse.Namespace, assets: dict[str, tuple[Path, str]], home: Path) -> list[tuple[str, list[Run]]]:
    """The runs of each phase: a warm-up of both variants (unless ``--no-warmup``), one alone, N at once."""
    from isaaclab_pipeline.config import job_uuid  # the snapshot's: the one the DAG runs

    stamp = time.strftime("%H%M%S")

    def runs_of(prefix: str, variants: list[str], own_output: list[bool]) -> list[Run]:
        made = []
        for i, (variant, own) in enumerate(zip(variants, own_output, strict=True)):
            run_id = f"{prefix}-{i:02d}-{variant}-{stamp}"
            run = Run(run_id, variant, assets[variant][1], assets[variant][0],
                      home / "outputs" / run_id if own else None, job_uuid(DAG_ID, run_id))
            run.conf = make_conf(run, args.num_envs, args.iterations)
            made.append(run)
        return made

    n = args.runs
    phases: list[tuple[str, list[Run]]] = []
    if not args.no_warmup:
        phases.append(("warmup", runs_of("warmup", ["a", "b"], [True, True])))
    phases.append(("alone", runs_of("alone", ["a"], [True])))
    phases.append(("concurrent", runs_of("concurrent", [("a", "b")[i % 2] for i in range(n)],
                                         [i % 4 < 2 for i in range(n)])))
    return phases


def _summary_head(args: argparse.Namespace, assets: dict[str, tuple[Path, str]], home: Path, src: Path,
                  port: int) -> dict[str, Any]:
    """The result document before any run: the host, the training, the variants and Airflow's settings."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "host": {"cpus": os.cpu_count(),
        "cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                     if ln.startswith("model name")), "")},
        "load_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "training": {"task": TASK, "rlLibrary": "rsl_rl", "numEnvs": args.num_envs,
                     "maxIterations": args.iterations, "device": "cpu"},
        "versions": {v: {"version": version, "episode_length_s": VARIANTS[v]} for v, (_, version) in
                     assets.items()},
        "airflow_settings": {k: v for k, v in airflow_env(home, src, port).items()
                             if k.startswith(("AIRFLOW__CORE__PARALLELISM", "AIRFLOW__CORE__MAX_ACTIVE",
                                              "AIRFLOW__API__BASE_URL"))},
        "phases": {}, "runs": {},
    }


def _run_phases(af: Airflow, phases: list[tuple[str, list[Run]]], summary: dict[str, Any], home: Path,
                versions: set[str], timeout_s: float) -> None:
    """Run each phase's runs and check them, sampling memory meanwhile; stop any job a timeout left running."""
    jobs_root = home / "pipeline" / "jobs"
    sampler = Sampler(jobs_root, af.proc.pid if af.proc else 0)
    sampler.start()
    try:
        for name, runs in phases:
            summary["phases"][name] = run_phase(af, sampler, name, runs, timeout_s)
            for run in runs:
                check_run(af, run, home, versions)
            rows = describe(runs, jobs_root)
            intervals = [(r["job_start"], r["job_end"]) for r in rows if r["job_start"] and r["job_end"]]
            summary["phases"][name]["max_jobs_at_once"] = max_overlap(intervals) if intervals else 0
            summary["runs"][name] = rows
            for row in rows:
                if row["problems"]:
                    log(f"{name}: {row['run_id']} PROBLEMS: {row['problems']}")
    finally:
        sampler.stop.set()
        sampler.join(10)
        summary["memory"] = sampler.peaks
        summary["airflow_ready_s"] = round(af.ready_s, 1)
        leftovers = [f"{k}: {v}" for k, v in
                     {d.name: (d / "pid").read_text().strip() for d in jobs_root.glob("*")
                      if (d / "pid").exists() and not (d / "exit_code").exists()}.items()]
        for line in leftovers:  # a job still running (timeout): stop what this benchmark started
            log(f"stopping the job still running: {line}")
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(line.split(": ")[1]), signal.SIGTERM)


def _write_results(args: argparse.Namespace, summary: dict[str, Any], n: int, ok: bool, home: Path) -> None:
    """Print the report, write it and the JSON to ``--out`` (with Airflow's log when a check failed); remove the
    private home when all passed (unless ``--keep`` or ``--scratch``)."""
    report = render(summary, n)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (args.out / f"{args.name}.txt").write_text(report + "\n")
    if not ok and (home / "standalone.log").exists():  # its last 256 KB: the components' own logs
        with (home / "standalone.log").open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 256 * 1024))
            (args.out / f"{args.name}.standalone.log").write_bytes(f.read())
    if not args.keep and args.scratch is None and ok:
        shutil.rmtree(home, ignore_errors=True)
    else:
        log(f"kept the private home {home}")


def render(summary: dict[str, Any], n: int) -> str:
    lines = [f"concurrent DAG runs on the local backend ({summary['date']}; {summary['host']['cpus']} CPUs, "
             f"{summary['host']['cpu']}; load at start {' '.join(summary['load_at_start'])})",
             f"training: {json.dumps(summary['training'])}; versions: {json.dumps(summary['versions'])}",
             f"airflow settings: {json.dumps(summary['airflow_settings'])}", ""]
    header = (f"{'phase':10s} {'run':30s} {'ver':8s} {'output':7s} {'state':8s} {'trigger→end':>11s} "
              f"{'start→end':>9s} {'job':>6s} {'isaaclab':>8s} {'airflow':>7s}  checks")
    lines.append(header)
    for phase, rows in summary["runs"].items():
        for r in rows:
            lines.append(f"{phase:10s} {r['run_id']:30s} {r['version']:8s} {r['output']:7s} {r['state']:8s} "
                         f"{_f(r['trigger_to_end_s']):>11s} {_f(r['start_to_end_s']):>9s} {_f(r['job_s']):>6s} "
                         f"{_f(r.get('isaaclab_s')):>8s} {_f(r['airflow_s']):>7s}  "
                         f"{'ok' if r['ok'] else '; '.join(r['problems'])}")
    lines.append("")
    for phase, p in summary["phases"].items():
        mem = summary.get("memory", {}).get(phase, {})
        lines.append(f"{phase:10s} runs {p['runs']}: wall {p['wall_s']:.1f} s (first trigger → last end; client "
                     f"{p['wall_client_s']:.1f} s), jobs at once {p.get('max_jobs_at_once')}, peak PSS jobs "
                     f"{mem.get('jobs_pss_mb')} MB, Airflow {mem.get('airflow_pss_mb')} MB, lowest MemAvailable "
                     f"{mem.get('min_mem_available_mb')} MB, max load {mem.get('max_load1')}")
    alone = summary["phases"].get("alone", {}).get("wall_s")
    conc = summary["phases"].get("concurrent", {}).get("wall_s")
    if alone and conc:
        summary["ratios"] = {"alone_s": alone, "concurrent_wall_s": conc,
                             "concurrent_over_alone": round(conc / alone, 2),
                             "throughput_vs_alone": round(n * alone / conc, 2)}
        lines += ["", f"{'1 alone':>14s} {f'{n} concurrent':>14s} {'wall ratio':>12s} {'throughput':>12s}",
                  f"{alone:>12.1f} s {conc:>12.1f} s {conc / alone:>11.2f}x {n * alone / conc:>11.2f}x",
                  f"concurrent_over_alone: {conc / alone:.2f}", f"throughput_vs_alone: {n * alone / conc:.2f}"]
    lines.append(f"base venv untouched: {not summary.get('base_venv_problems')}; distinct job ids: "
                 f"{summary.get('distinct_job_ids')}; all {n} jobs ran at once: {summary.get('all_at_once')}")
    lines.append(f"all_checks_passed: {summary['all_checks_passed']}")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


if __name__ == "__main__":
    sys.exit(main())
