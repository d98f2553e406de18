"""The GPU samples as CloudWatch custom metrics on AWS Batch: one ``PutMetricData`` per sampling interval.

Namespace ``IsaacLab/Training`` (``ISAACLAB_RUNNER_CLOUDWATCH_NAMESPACE`` overrides it). Every datum has the
dimensions ``JobId`` (the pipeline's job UUID), ``Node`` (the node rank) and ``GPU`` (the NVML index), and the
job's ``BatchJobId`` when Batch set one. Metrics and units:

==========================  ==========  ===========================================
``GPUUtilization``          Percent     NVML's utilisation of the sampling interval
``GPUMemoryUsed``           Megabytes   memory in use (MiB)
``GPUMemoryUtilization``    Percent     used / total memory
``GPUPowerDraw``            None        watts
``GPUTemperature``          None        degrees Celsius
==========================  ==========  ===========================================

On by default where ``AWS_BATCH_JOB_ID`` is set (``ISAACLAB_RUNNER_CLOUDWATCH=0`` turns it off, ``=1`` on
elsewhere). The job role needs ``cloudwatch:PutMetricData`` (the stack's template grants it for this namespace).
Publishing never fails the job: a call is bounded (``MAX_DATUMS`` per request, short timeouts, no retries) and
after ``MAX_CONSECUTIVE_FAILURES`` failed calls in a row the publisher stops for the rest of the job.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from isaaclab_runner.gpu_monitor import Sample

log = logging.getLogger("isaaclab_runner.cloudwatch")

NAMESPACE = "IsaacLab/Training"
NAMESPACE_ENV = "ISAACLAB_RUNNER_CLOUDWATCH_NAMESPACE"
ENABLE_ENV = "ISAACLAB_RUNNER_CLOUDWATCH"
MAX_DATUMS = 1000  # PutMetricData's limit per request
MAX_CONSECUTIVE_FAILURES = 3


def enabled(env: dict[str, str] | None = None) -> bool:
    """True on Batch unless ``ISAACLAB_RUNNER_CLOUDWATCH=0``; elsewhere only with ``=1``."""
    env = dict(os.environ) if env is None else env
    flag = env.get(ENABLE_ENV, "").strip()
    return flag == "1" or (flag != "0" and bool(env.get("AWS_BATCH_JOB_ID")))


class MetricPublisher:
    """Send each interval's GPU samples in one ``PutMetricData``; never raises.

    :param job_id: the pipeline's job UUID (the ``JobId`` dimension).
    :param client: a boto3 CloudWatch client (default: one with short timeouts and no retries).
    """

    def __init__(self, job_id: str, client: Any = None, namespace: str | None = None,
                 batch_job_id: str | None = None) -> None:
        self.job_id = job_id
        self.namespace = namespace or os.environ.get(NAMESPACE_ENV) or NAMESPACE
        self.batch_job_id = batch_job_id if batch_job_id is not None else os.environ.get("AWS_BATCH_JOB_ID")
        self._client = client
        self.calls = 0
        self.failures = 0
        self._failed_in_a_row = 0
        self.stopped = False

    @property
    def client(self) -> Any:
        """The CloudWatch client, made on first use (boto3 is imported only where metrics are sent)."""
        if self._client is None:
            import boto3
            from botocore.config import Config

            from isaaclab_runner.storage import aws_region

            self._client = boto3.client("cloudwatch", region_name=aws_region(),
                                        config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        return self._client

    def datums(self, samples: Sequence[Sample]) -> list[dict[str, Any]]:
        """The metric data of one interval (at most ``MAX_DATUMS``; the first GPUs' when there are more)."""
        out: list[dict[str, Any]] = []
        for s in samples:
            dims = [{"Name": "JobId", "Value": self.job_id}, {"Name": "Node", "Value": str(s.node)},
                    {"Name": "GPU", "Value": str(s.gpu)}]
            if self.batch_job_id:
                dims.append({"Name": "BatchJobId", "Value": self.batch_job_id})
            stamp = datetime.fromtimestamp(s.wall_time, UTC)
            values = [("GPUUtilization", s.utilization_pct, "Percent"),
                      ("GPUMemoryUsed", s.memory_used_mib, "Megabytes"),
                      ("GPUMemoryUtilization",
                       100.0 * s.memory_used_mib / s.memory_total_mib if s.memory_total_mib else None, "Percent"),
                      ("GPUPowerDraw", s.power_w, "None"), ("GPUTemperature", s.temperature_c, "None")]
            out += [{"MetricName": name, "Dimensions": dims, "Timestamp": stamp, "Value": float(value), "Unit": unit}
                    for name, value, unit in values if value is not None]
        return out[:MAX_DATUMS]

    def __call__(self, samples: Sequence[Sample]) -> None:
        """Publish one interval; a failure is counted and logged, and ends publishing after a few in a row."""
        if self.stopped or not samples:
            return
        try:
            self.client.put_metric_data(Namespace=self.namespace, MetricData=self.datums(samples))
            self.calls += 1
            self._failed_in_a_row = 0
        except Exception as exc:  # metrics are a view: the job trains on without them
            self.failures += 1
            self._failed_in_a_row += 1
            log.warning("CloudWatch PutMetricData failed (%s: %s)", type(exc).__name__, str(exc)[:200])
            if self._failed_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                self.stopped = True
                log.warning("CloudWatch metrics off for this job after %d failed calls in a row", self._failed_in_a_row)
