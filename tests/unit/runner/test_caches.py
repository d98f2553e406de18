"""Caches that travel between jobs: Warp's kernel cache restored at job start and saved when the job compiled
something new (never failing the job), and env-package wheels built once per package archive."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from isaaclab_runner import caches
from isaaclab_runner.caches import KernelCache, warp_cache_dir
from packages_env import RECORDING_INSTALL, run_script, tiny_env_package
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[3]


def _compile(local: Path, *modules: str) -> None:
    """What Warp leaves per compiled kernel module: a folder with its object and meta files."""
    for name in modules:
        (local / name).mkdir(parents=True, exist_ok=True)
        (local / name / f"{name}.o").write_bytes(b"\x7fELF" + name.encode())
        (local / name / f"{name}.meta").write_text("{}")


def test_warp_cache_dir_follows_warps_own_rules(tmp_path: Path) -> None:
    assert warp_cache_dir("1.17.0", {"WARP_CACHE_PATH": str(tmp_path / "w")}) == tmp_path / "w" / "1.17.0"
    assert warp_cache_dir("1.17.0", {"XDG_CACHE_HOME": "/c"}) == Path("/c/warp/1.17.0")
    assert warp_cache_dir("1.17.0", {}) == Path.home() / ".cache" / "warp" / "1.17.0"


def test_a_fresh_host_restores_what_an_earlier_job_compiled(tmp_path: Path) -> None:
    store = tmp_path / "cache"  # the deployment's cache location (a folder locally, s3:// in production)
    first = KernelCache(str(store), tmp_path / "job1", "1.17.0", local_dir=tmp_path / "host1" / "1.17.0", key="cpu-x")
    assert "none at" in first.start_restore().wait_restored()
    _compile(first.local_dir, "wp_a_1", "wp_b_2")  # the job compiled two modules
    assert first.save().startswith("kernel cache: saved 2 kernel modules (2 new")
    archive = store / "warp" / "1.17.0" / "cpu-x.tar.gz"
    with tarfile.open(archive) as tar:
        assert sorted({m.name.split("/")[0] for m in tar.getmembers()}) == ["wp_a_1", "wp_b_2"]

    second = KernelCache(str(store), tmp_path / "job2", "1.17.0", local_dir=tmp_path / "host2" / "1.17.0",
                         key="cpu-x")
    assert "restored 2 kernel modules" in second.start_restore().wait_restored()
    assert (second.local_dir / "wp_a_1" / "wp_a_1.o").read_bytes() == b"\x7fELFwp_a_1"
    assert second.save() == "kernel cache: nothing new compiled; not saved"
    _compile(second.local_dir, "wp_c_3")
    assert "saved 3 kernel modules (1 new" in second.save()

    other_gpu = KernelCache(str(store), tmp_path / "job3", "1.17.0", local_dir=tmp_path / "host3" / "1.17.0",
                            key="sm90-drv570.86-x")
    assert "none at" in other_gpu.start_restore().wait_restored()  # kernels of another GPU/driver never mix


def test_a_broken_cache_never_fails_the_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "cache"
    bad = store / "warp" / "1.17.0" / "cpu-x.tar.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a tar.gz")
    cache = KernelCache(str(store), tmp_path / "job", "1.17.0", local_dir=tmp_path / "host" / "1.17.0", key="cpu-x")
    assert "restore from" in cache.start_restore().wait_restored() and "failed" in cache.wait_restored()
    _compile(cache.local_dir, "wp_a_1")
    assert cache.save() == "kernel cache: not saved (the restore did not finish)"  # never overwrite what we can't read
    assert bad.read_bytes() == b"not a tar.gz"

    unwritable = KernelCache("s3://no-such-bucket-for-tests/x", tmp_path / "job2", "1.17.0",
                             local_dir=tmp_path / "host2" / "1.17.0", key="cpu-x")
    unwritable._remote = set()  # as after a restore that found nothing
    _compile(unwritable.local_dir, "wp_a_1")

    def store_down(src: Path, uri: str) -> None:
        raise OSError("the store is down")

    monkeypatch.setattr(caches.storage, "upload", store_down)
    assert unwritable.save() == ("kernel cache: save to s3://no-such-bucket-for-tests/x/warp/1.17.0/cpu-x.tar.gz "
                                 "failed: OSError: the store is down")


def test_host_key_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi
    assert caches.host_key().startswith("cpu-")


WHEEL_TWICE = RECORDING_INSTALL + r'''
out = {}
for job in ("job1", "job2"):  # two jobs, two fresh job environments, one package, one cache
    commands.clear()
    env = packages.JobEnvironment.create(tmp / job / "venv")
    installed = packages.fetch_and_install(str(archive), tmp / job, env, WheelCache(str(tmp / "cache"), tmp / job))
    where = subprocess.run([str(env.python), "-c", "import tiny_env; print(tiny_env.__file__)"],
                           capture_output=True, text=True).stdout.strip()
    out[job] = {"built": any(" --editable " in c for c in commands),
                "installed": [c.rsplit(" ", 1)[-1] for c in commands if " install " in c],
                "modules": installed.modules, "version": installed.version, "imported_from": where,
                "project": str(installed.project)}
print(json.dumps(out))
'''


@pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")
def test_the_second_job_with_a_package_installs_the_cached_editable_build_without_building(tmp_path: Path) -> None:
    """Job 1 runs ``pip install -e`` and caches the editable build; job 2 unpacks it pointed at its own folder."""
    project, archive = tiny_env_package(tmp_path)
    out = json.loads(run_script(ISAACLAB_PYTHON, WHEEL_TWICE, archive, tmp_path))
    assert out["job1"]["built"] and not out["job2"]["built"], out  # built once
    assert out["job1"]["installed"][0] == out["job1"]["project"]  # pip install --editable <extracted folder>
    assert out["job2"]["installed"] == []  # the cached build is unpacked into the venv: no pip at all
    assert out["job1"]["modules"] == out["job2"]["modules"] == ["tiny_env"]
    for job in ("job1", "job2"):  # each job imports from its own extracted folder, in place
        assert out[job]["imported_from"] == f"{out[job]['project']}/tiny_env/__init__.py", out
    cached = list((tmp_path / "cache" / "wheels").rglob("*.whl"))
    assert len(cached) == 1 and cached[0].parent.parent.name == caches.sha256(archive)
    assert cached[0].parent.name.endswith("-editable")


RUNNER_TWICE = r'''
import json, os, sys
from pathlib import Path
from isaaclab_runner import runner as runner_mod
from isaaclab_runner.caches import warp_version
from isaaclab_runner.jobspec import JobSpec
from isaaclab_runner.runner import JobRunner

tmp = Path(sys.argv[1])
runner_mod.packages.verify_task = lambda task, python=None: task
runner_mod.isaaclab_cli.detect_isaaclab = lambda: runner_mod.isaaclab_cli.IsaacLabInstall(3)
runner_mod.isaaclab_cli.resolve_device = lambda requested: "cpu"
runner_mod.packages.JobEnvironment.create = classmethod(lambda cls, root: cls.current())
results = []
for host in ("host1", "host2"):  # two fresh hosts: an empty Warp cache each
    os.environ["WARP_CACHE_PATH"] = str(tmp / host / "warp")
    spec = JobSpec.from_dict({"jobId": "00000000-0000-0000-0000-000000000003", "mode": "train", "task": "T",
                              "rlLibrary": "rsl_rl", "seed": 1, "numEnvs": 16, "maxIterations": 3,
                              "stagingUri": str(tmp / host / "staging"), "cacheUri": str(tmp / "cache")})
    job = JobRunner(spec, tmp / host / "work")

    def fake_isaaclab(cmd, cwd, env, parse, host=host):  # Warp compiles a kernel module on host1 only
        seen = sorted(os.listdir(tmp / host / "warp" / warp_version()))
        if host == "host1":
            (tmp / host / "warp" / warp_version() / "wp_kernel_abc").mkdir()
        print("modules at start:", seen)
        return 0

    job._stream = fake_isaaclab
    job.run()
    results.append(json.loads((tmp / host / "staging" / "result.json").read_text()).get("kernelCache"))
print(json.dumps(results))
'''


@pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")
def test_the_runner_saves_the_kernels_one_host_compiled_for_the_next(tmp_path: Path) -> None:
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-c", RUNNER_TWICE, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, cwd=REPO / "task_image")
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [{"restored": 0, "saved": True},
                                                                 {"restored": 1, "saved": False}]
    assert "modules at start: []" in proc.stdout and "modules at start: ['wp_kernel_abc']" in proc.stdout
    log = (tmp_path / "host2" / "staging" / "runner.log").read_text()
    assert "kernel cache: restored 1 kernel modules" in log and "nothing new compiled; not saved" in log
