"""The GPU monitor with a fake NVML: gpu.csv per node, the merged gpu.csv and summary.json's figures; CloudWatch
through a moto server on loopback: one PutMetricData per interval, bounded, never failing the job."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from isaaclab_runner import cloudwatch, gpu_monitor
from pipeline_env import ISAACLAB_PYTHON

GIB = 1024**3


class FakeNvml:
    """Two 80 GiB GPUs whose memory grows by 1 GiB per read; GPU 1 reports no power (as a MIG slice)."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        self.reads = 0
        self.shut = False

    def nvmlInit(self) -> None:  # noqa: N802 - NVML's names
        pass

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shut = True

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:  # noqa: N802
        return i

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:  # noqa: N802
        self.reads += 1
        return SimpleNamespace(used=(2 + h + self.reads // 2) * GIB, total=80 * GIB)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:  # noqa: N802
        return SimpleNamespace(gpu=40 + 20 * h)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:  # noqa: N802
        if h == 1:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 250_000

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:  # noqa: N802
        return 55


def test_fake_nvml_writes_gpu_csv_and_the_summary_figures(tmp_path: Path) -> None:
    from isaaclab_pipeline import gpu

    nvml = FakeNvml()
    published: list[list[gpu_monitor.Sample]] = []
    step = {"iteration": 0}
    monitor = gpu_monitor.GpuMonitor(nvml, tmp_path / "node-0.csv", node=0, step=lambda: step["iteration"],
                                     interval_s=0.05, publish=published.append).start()
    time.sleep(0.3)
    step["iteration"] = 7
    stats = monitor.stop()
    assert nvml.shut
    with (tmp_path / "node-0.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(gpu_monitor.COLUMNS)
    assert {r["gpu"] for r in rows} == {"0", "1"} and len(rows) == stats["samples"] >= 6
    assert rows[-1]["step"] == "7" and rows[0]["step"] == "0"
    assert {r["power_w"] for r in rows if r["gpu"] == "1"} == {""}  # not reported: an empty cell
    assert {r["power_w"] for r in rows if r["gpu"] == "0"} == {"250.0"}
    assert published and all(len(batch) == 2 for batch in published)  # one call per interval, both GPUs in it
    assert stats["meanUtilizationPct"] == 50.0 and stats["memoryTotalMiB"] == 80 * 1024
    peak = max(float(r["memory_used_mib"]) for r in rows)
    assert stats["peakMemoryMiB"] == peak

    # a second node's file; the convert step merges them and puts the figures (and a hint) in summary.json
    other = tmp_path / "node-1.csv"
    other.write_text(",".join(gpu_monitor.COLUMNS) + "\n0,1.0,1,0,90,4096.0,81920.0,300.0,60\n")
    figures = gpu.merge_gpu_csv([tmp_path / "node-0.csv", other], tmp_path / "gpu.csv")
    merged = list(csv.DictReader((tmp_path / "gpu.csv").open()))
    assert len(merged) == len(rows) + 1 and merged[0]["node"] == "1"  # sorted by wall time
    assert figures["gpus"] == 3 and figures["peakMemoryMiB"] == peak
    hinted = gpu.with_hint(figures, 4096)
    assert hinted["hint"].startswith(f"peak {peak / 1024:.1f} of 80 GiB at numEnvs 4096: about ")
    fits = int(hinted["hint"].split("about ")[1].split()[0])
    assert fits > 4096 * 5
    oom = gpu.with_hint(figures, 4096, "the GPU ran out of memory (CUDA out of memory)")
    assert oom["hint"].startswith(f"out of memory: peak {peak / 1024:.1f} of 80 GiB before it")


def test_no_gpu_no_file_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """This VM has no GPU: without pynvml, or with one whose init fails, there is no monitor and no file."""
    import builtins

    real_import = builtins.__import__

    def no_pynvml(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pynvml":
            raise ImportError("No module named 'pynvml'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pynvml)
    assert gpu_monitor.GpuMonitor.start_if_present(tmp_path / "gpu.csv") is None
    monkeypatch.setattr(builtins, "__import__", real_import)

    failing = SimpleNamespace(nvmlInit=lambda: (_ for _ in ()).throw(OSError("NVML Shared Library Not Found")))
    monkeypatch.setitem(__import__("sys").modules, "pynvml", failing)
    assert gpu_monitor.GpuMonitor.start_if_present(tmp_path / "gpu.csv") is None
    assert not (tmp_path / "gpu.csv").exists()


NO_GPU_PROBE = """
import logging, sys
from pathlib import Path
import pynvml  # the image's nvidia-ml-py: must import
from isaaclab_runner import gpu_monitor
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
print("monitor", gpu_monitor.GpuMonitor.start_if_present(Path(sys.argv[1])))
"""


@pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")
def test_the_real_pynvml_without_a_gpu_says_so(tmp_path: Path) -> None:
    """The image's nvidia-ml-py imports on a host without a driver: NVML fails to start, one line, no file."""
    import subprocess

    probe = subprocess.run([str(ISAACLAB_PYTHON), "-c", NO_GPU_PROBE, str(tmp_path / "gpu.csv")],
                           capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr
    if "monitor None" not in probe.stdout:
        pytest.skip(f"this host has a GPU NVML can read: {probe.stdout.strip()}")
    assert "GPU monitor off: NVML did not start" in probe.stdout, probe.stdout
    assert "Traceback" not in probe.stdout + probe.stderr
    assert not (tmp_path / "gpu.csv").exists()


def test_cloudwatch_batches_bounds_and_never_fails(tmp_path: Path) -> None:
    import boto3
    from pipeline_env import free_port, moto_on_loopback

    with moto_on_loopback() as url:
        client = boto3.client("cloudwatch", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                              aws_secret_access_key="x")
        calls: list[dict[str, Any]] = []
        client.meta.events.register("before-call.cloudwatch.PutMetricData",
                                    lambda params, **_: calls.append(params))
        publisher = cloudwatch.MetricPublisher("job-1", client=client, batch_job_id="batch-123")
        monitor = gpu_monitor.GpuMonitor(FakeNvml(), tmp_path / "gpu.csv", node=0, interval_s=0.05,
                                         publish=publisher).start()
        time.sleep(0.3)
        monitor.stop()
        assert publisher.calls == len(calls) == monitor.samples // 2  # one call per interval (2 GPUs each)
        assert publisher.failures == 0
        metrics = client.list_metrics(Namespace=cloudwatch.NAMESPACE)["Metrics"]
        names = {m["MetricName"] for m in metrics}
        assert names == {"GPUUtilization", "GPUMemoryUsed", "GPUMemoryUtilization", "GPUPowerDraw", "GPUTemperature"}
        dims = {frozenset((d["Name"], d["Value"]) for d in m["Dimensions"]) for m in metrics}
        assert frozenset({("JobId", "job-1"), ("Node", "0"), ("GPU", "1"), ("BatchJobId", "batch-123")}) in dims
        stats = client.get_metric_statistics(
            Namespace=cloudwatch.NAMESPACE, MetricName="GPUUtilization", Statistics=["Average"], Period=60,
            StartTime=time.time() - 600, EndTime=time.time() + 600,
            Dimensions=[{"Name": "JobId", "Value": "job-1"}, {"Name": "Node", "Value": "0"},
                        {"Name": "GPU", "Value": "1"}, {"Name": "BatchJobId", "Value": "batch-123"}])
        assert [p["Average"] for p in stats["Datapoints"]] == [60.0]

    # bounded: a host with many GPUs never sends more than PutMetricData takes in one request
    many = [gpu_monitor.Sample(0, time.time(), 0, i, 1.0, 1.0, 2.0, 1.0, 1.0) for i in range(300)]
    assert len(publisher.datums(many)) == cloudwatch.MAX_DATUMS

    # never fails: an endpoint that does not answer costs a few logged failures, then publishing stops
    dead = boto3.client("cloudwatch", endpoint_url=f"http://127.0.0.1:{free_port()}", region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x",
                        config=__import__("botocore.config").config.Config(retries={"max_attempts": 1},
                                                                           connect_timeout=1))
    down = cloudwatch.MetricPublisher("job-2", client=dead)
    for _ in range(5):
        down(many[:2])  # raises nothing
    assert (down.failures, down.stopped) == (cloudwatch.MAX_CONSECUTIVE_FAILURES, True)


def test_cloudwatch_is_on_for_batch_only_unless_asked() -> None:
    assert cloudwatch.enabled({"AWS_BATCH_JOB_ID": "abc"})
    assert not cloudwatch.enabled({"AWS_BATCH_JOB_ID": "abc", cloudwatch.ENABLE_ENV: "0"})
    assert not cloudwatch.enabled({})
    assert cloudwatch.enabled({cloudwatch.ENABLE_ENV: "1"})
    assert json.loads(json.dumps(cloudwatch.NAMESPACE)) == "IsaacLab/Training"


def test_the_convert_step_publishes_gpu_csv_and_the_summary_fields(tmp_path: Path) -> None:
    """A staged job with two nodes' samples: metrics/gpu.csv beside metrics.csv, summary.json's timings and gpu."""
    import shutil

    from isaaclab_pipeline.staged_metrics import convert_staged_run

    staging = tmp_path / "staging" / "job-1"
    events = next((Path(__file__).resolve().parents[2] / "fixtures" / "isaaclab_events").rglob("events.out.*"))
    (staging / "run").mkdir(parents=True)
    shutil.copy(events, staging / "run" / events.name)
    (staging / "spec.json").write_text(json.dumps({"numEnvs": 4096}))
    (staging / "result.json").write_text(json.dumps({"status": "succeeded", "timings": {
        "install": 4.0, "training": 50.0, "total": 60.0, "queueWait": 12.0, "attempts": [{"attempt": 1}]}}))
    (staging / "gpu").mkdir()
    for node in (0, 1):
        monitor = gpu_monitor.GpuMonitor(FakeNvml(), staging / "gpu" / f"node-{node}.csv", node=node,
                                         interval_s=0.05).start()
        time.sleep(0.12)
        monitor.stop()
    convert_staged_run(str(staging))
    rows = list(csv.DictReader((staging / "metrics" / "gpu.csv").open()))
    assert {r["node"] for r in rows} == {"0", "1"} and (staging / "metrics" / "metrics.csv").exists()
    summary = json.loads((staging / "metrics" / "summary.json").read_text())
    assert summary["timings"] == {"queueWait": 12.0, "install": 4.0, "training": 50.0, "total": 60.0,
                                  "attempts": 1, "jobs": 1}
    assert summary["gpu"]["gpus"] == 4 and summary["gpu"]["memoryTotalMiB"] == 80 * 1024
    assert summary["gpu"]["peakMemoryMiB"] == max(float(r["memory_used_mib"]) for r in rows)
    assert "numEnvs 4096: about " in summary["gpu"]["hint"]
