"""``device: auto`` on a GPU host is answered by the GPU monitor's NVML, without importing torch in the runner
(2-3 s of a job's start on a GPU host); torch still decides where NVML's indices cannot follow the job's GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
from isaaclab_runner import runner as runner_mod
from isaaclab_runner.gpu_monitor import GpuMonitor
from isaaclab_runner.jobspec import JobSpec
from isaaclab_runner.runner import JobRunner


class Nvml:
    """The two NVML calls a monitor makes when it is created (a host with ``count`` GPUs)."""

    def __init__(self, count: int) -> None:
        self.count = count

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802 - NVML's names
        return self.count

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i


def _job(tmp_path: Path, device: str, gpus: int | None) -> JobRunner:
    spec = JobSpec.from_dict({"jobId": "00000000-0000-0000-0000-000000000006", "mode": "train", "task": "T",
                              "rlLibrary": "rsl_rl", "seed": 1, "numEnvs": 16, "maxIterations": 3, "device": device,
                              "stagingUri": str(tmp_path / "staging")})
    job = JobRunner(spec, tmp_path / "work")
    job.gpu = None if gpus is None else GpuMonitor(Nvml(gpus), tmp_path / "gpu.csv")
    return job


@pytest.mark.parametrize(("device", "gpus", "visible", "expected"), [
    ("auto", 1, None, "cuda:0"),  # NVML sees the GPU: no torch
    ("auto", 2, "1", "cuda:0"),
    ("auto", 2, "5", "torch"),  # not among NVML's GPUs: the monitor samples none
    ("auto", 1, "", "torch"),  # every GPU hidden: NVML ignores CUDA_VISIBLE_DEVICES
    ("auto", 1, "GPU-8c2f", "torch"),
    ("auto", None, None, "torch"),  # no NVML (a CPU host): torch answers, as before
    ("cuda:1", 1, None, "cuda:1"),
])
def test_auto_device_from_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, device: str, gpus: int | None,
                               visible: str | None, expected: str) -> None:
    monkeypatch.setattr(runner_mod.isaaclab_cli, "resolve_device", lambda requested: "torch" if requested == "auto"
                        else requested)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert _job(tmp_path, device, gpus)._resolve_device() == expected
