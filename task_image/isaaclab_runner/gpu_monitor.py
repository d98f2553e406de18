"""The GPU, sampled: utilisation, memory, power and temperature of each GPU every few seconds, into ``gpu.csv``.

NVML is read through ``nvidia-ml-py`` (the ``pynvml`` module), imported when the monitor starts; without it, or
without a GPU (NVML fails to initialise), there is no monitor: no file, no error, one log line. Each node writes
its own file, staged as ``gpu/node-<rank>.csv``; the convert step merges them into ``metrics/gpu.csv`` (published
beside ``metrics.csv``) and puts the peak memory and the mean utilisation into ``summary.json``.

Columns (``step`` and ``wall_time`` as in ``metrics.csv``: the training iteration under way, epoch seconds):
``step, wall_time, node, gpu, utilization_pct, memory_used_mib, memory_total_mib, power_w, temperature_c``.

Each interval's samples also go to an optional publisher (``cloudwatch.MetricPublisher`` on Batch), on the
sampling thread: one call per interval, whose failures are the publisher's to swallow.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("isaaclab_runner.gpu")

INTERVAL_ENV = "ISAACLAB_RUNNER_GPU_INTERVAL_S"
DEFAULT_INTERVAL_S = 5.0
COLUMNS = ("step", "wall_time", "node", "gpu", "utilization_pct", "memory_used_mib", "memory_total_mib", "power_w",
           "temperature_c")
MIB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One GPU at one time."""

    step: int
    wall_time: float
    node: int
    gpu: int
    utilization_pct: float
    memory_used_mib: float
    memory_total_mib: float
    power_w: float | None
    temperature_c: float | None

    def row(self) -> list[Any]:
        """The CSV row (empty cells for what the GPU does not report)."""
        return ["" if v is None else v for v in (self.step, round(self.wall_time, 3), self.node, self.gpu,
                                                 self.utilization_pct, round(self.memory_used_mib, 1),
                                                 round(self.memory_total_mib, 1), self.power_w, self.temperature_c)]


def load_nvml() -> Any | None:
    """``pynvml`` initialised, or None (not installed, no driver, no GPU); the reason is logged."""
    try:
        import pynvml
    except ImportError:
        log.info("GPU monitor off: nvidia-ml-py (pynvml) is not installed")
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() < 1:
            pynvml.nvmlShutdown()
            return None
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded: a host without a GPU
        log.info("GPU monitor off: NVML did not start (%s)", exc)
        return None
    return pynvml


def visible_indices(count: int, env: dict[str, str] | None = None) -> list[int]:
    """The NVML indices of the GPUs this job sees (``CUDA_VISIBLE_DEVICES`` when it lists numbers, else all)."""
    value = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES", "").strip()
    if value and all(part.strip().isdigit() for part in value.split(",")):
        return [i for i in (int(p) for p in value.split(",")) if i < count]
    return list(range(count))


class GpuMonitor:
    """Sample every visible GPU every ``interval_s`` seconds into ``path`` on a background thread.

    :param nvml: an initialised ``pynvml`` module (``load_nvml()``; a fake in tests).
    :param path: the CSV file to write.
    :param node: this node's rank (a column, and the file's name when staged).
    :param step: returns the training iteration under way (the runner's progress).
    :param publish: called with each interval's samples (CloudWatch on Batch); its errors are logged, never raised.
    """

    def __init__(self, nvml: Any, path: Path, node: int = 0, step: Callable[[], int] | None = None,
                 interval_s: float | None = None, publish: Callable[[list[Sample]], None] | None = None) -> None:
        self.nvml = nvml
        self.path = path
        self.node = node
        self._step = step or (lambda: 0)
        self.interval_s = interval_s or float(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_S)
        self._publish = publish
        self._handles = [(i, nvml.nvmlDeviceGetHandleByIndex(i)) for i in visible_indices(nvml.nvmlDeviceGetCount())]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.samples = 0
        self.peak_mib: dict[int, float] = {}
        self.total_mib: dict[int, float] = {}
        self._util_sum = 0.0
        self.errors = 0

    @classmethod
    def start_if_present(cls, path: Path, **kwargs: Any) -> GpuMonitor | None:
        """A started monitor, or None when this host has no GPU NVML can read."""
        nvml = load_nvml()
        return None if nvml is None else cls(nvml, path, **kwargs).start()

    @property
    def gpus(self) -> list[int]:
        """The NVML indices sampled."""
        return [i for i, _ in self._handles]

    def start(self) -> GpuMonitor:
        """Write the header and start sampling; returns self."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w", newline="") as f:
            csv.writer(f).writerow(COLUMNS)
        self._thread = threading.Thread(target=self._loop, name="gpu-monitor", daemon=True)
        self._thread.start()
        return self

    def sample(self) -> list[Sample]:
        """Read every GPU once (a GPU that fails to answer is left out of this interval)."""
        nvml, now, step = self.nvml, time.time(), self._step()
        out = []
        for index, handle in self._handles:
            try:
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
                out.append(Sample(step, now, self.node, index, float(util), memory.used / MIB, memory.total / MIB,
                                  _optional(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                                  _optional(lambda h=handle: float(nvml.nvmlDeviceGetTemperature(
                                      h, nvml.NVML_TEMPERATURE_GPU)))))
            except Exception as exc:
                self.errors += 1
                log.debug("GPU %d not read: %s", index, exc)
        return out

    def stop(self) -> dict[str, Any] | None:
        """Take a last sample, end the thread, shut NVML down; return :meth:`stats`."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s + 5)
        self._record(self.sample())
        with contextlib.suppress(Exception):  # a driver gone at exit: the samples are written already
            self.nvml.nvmlShutdown()
        return self.stats()

    def stats(self) -> dict[str, Any] | None:
        """Peak memory (MiB, the largest over GPUs), the card's memory and the mean utilisation so far."""
        if not self.samples:
            return None
        gpu = max(self.peak_mib, key=self.peak_mib.__getitem__)
        return {"peakMemoryMiB": round(self.peak_mib[gpu], 1), "memoryTotalMiB": round(self.total_mib[gpu], 1),
                "meanUtilizationPct": round(self._util_sum / self.samples, 1), "samples": self.samples,
                "gpus": len(self.peak_mib)}

    def _loop(self) -> None:
        self._record(self.sample())  # one at once, so even a short job has a row
        while not self._stop.wait(self.interval_s):
            self._record(self.sample())

    def _record(self, samples: list[Sample]) -> None:
        if not samples:
            return
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerows(s.row() for s in samples)
        for s in samples:
            self.samples += 1
            self._util_sum += s.utilization_pct
            self.peak_mib[s.gpu] = max(self.peak_mib.get(s.gpu, 0.0), s.memory_used_mib)
            self.total_mib[s.gpu] = s.memory_total_mib
        if self._publish is not None:
            try:
                self._publish(samples)
            except Exception as exc:  # the publisher swallows its own; this is the last guard for the thread
                log.warning("GPU metrics not published: %s", exc)


def _optional(read: Callable[[], float]) -> float | None:
    try:
        return round(read(), 1)
    except Exception:  # power and temperature are not reported by every GPU (MIG slices, some vGPUs)
        return None
