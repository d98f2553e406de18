"""What a run cost: GPU-seconds and an estimated price from the Batch job's attempts; locally, the wall time.

A Batch job is paid for while its instances run it: every attempt counts (a spot reclaim's interrupted attempt was
billed too), from the attempt's ``startedAt`` to its ``stoppedAt``, on every node. Per attempt:

- **seconds**: ``stoppedAt - startedAt`` (a running attempt: until now);
- **instance type**: the job's ``instanceType`` (multi-node job definitions may name one per node range), else the
  ECS container instance's ``ecs.instance-type`` attribute (``ecs:DescribeContainerInstances``), else the Variable
  ``isaaclab_cost_instance_type``;
- **capacity**: multi-node jobs run on on-demand instances only (AWS Batch places no multi-node parallel job on
  Spot); a single-node attempt's compute environment (named in its ECS cluster, ``<compute env>_Batch_<uuid>``)
  says SPOT or EC2 (``batch:DescribeComputeEnvironments``); otherwise ``unknown``, priced on-demand (an upper bound).

GPU-seconds = Σ seconds × nodes × GPUs per node. Estimated cost = Σ seconds / 3600 × nodes × the instance's hourly
price, from the price table in the Variable ``isaaclab_cost_prices`` (USD per instance-hour, on-demand and spot):
``{"g6.xlarge": {"onDemand": 0.805, "spot": 0.32}, "default": {...}}``. No table entry: GPU-seconds only, and the
cost says why it is missing. The assumption behind the price: one job per instance (the stack's job definitions
reserve the GPUs they run on; a bigger instance shared by several jobs would be charged to each in full).

Locally there is no bill: the wall time of the job (its folder's ``pid`` to ``exit_code``) only.

The **queue wait** (submitted → running, per attempt and summed as ``queueWaitSeconds``) is not billed, and is kept
apart from the running time: it is what warm capacity (the template's ``WarmMinVcpus``) would save. It comes from
``timings.queue_waits`` (the same figure as ``job-result.json``'s timings); ``record_cost`` adds the runner's
``trainingSeconds`` from the staged ``result.json`` when the job left its timings.

``record_cost`` writes ``cost.json`` beside the metrics in staging (``{staging}/metrics/cost.json``, published as
``{uuid}/cost.json``); it never fails the step that calls it. ``live_cost`` is the runs view's estimate while the
job runs.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from isaaclab_pipeline import staging_layout, timings
from isaaclab_pipeline.backends.base import JobHandle
from isaaclab_pipeline.settings import get_setting

log = logging.getLogger(__name__)

COST_NAME = "cost.json"
PRICES_VARIABLE = "isaaclab_cost_prices"
ON_DEMAND, SPOT, UNKNOWN = "on-demand", "spot", "unknown"
_CE_TYPES = {"SPOT": SPOT, "FARGATE_SPOT": SPOT, "EC2": ON_DEMAND, "FARGATE": ON_DEMAND}


class PriceTableError(ValueError):
    """The Variable isaaclab_cost_prices is not a price table; the message names the bad entry."""


def parse_price_table(raw: str | None) -> dict[str, dict[str, float]]:
    """Parse the Variable ``isaaclab_cost_prices``: instance type (or ``default``) → ``{"onDemand", "spot"}`` in USD
    per instance-hour; either price may be left out.

    :raises PriceTableError: naming the Variable and the entry that is not a price.
    """
    if raw is None or not str(raw).strip():
        return {}
    try:
        table = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"Variable {PRICES_VARIABLE} is not JSON ({exc}); write "
                              '{"g6.xlarge": {"onDemand": 0.805, "spot": 0.32}}') from exc
    if not isinstance(table, dict):
        raise PriceTableError(f"Variable {PRICES_VARIABLE} must be a JSON object of instance type -> prices")
    out: dict[str, dict[str, float]] = {}
    for itype, prices in table.items():
        if not isinstance(prices, dict) or not prices or set(prices) - {"onDemand", "spot"}:
            raise PriceTableError(f"Variable {PRICES_VARIABLE}: {itype!r} must map to "
                                  '{"onDemand": <USD/hour>, "spot": <USD/hour>} (either may be left out)')
        for kind, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price) or price < 0:
                raise PriceTableError(f"Variable {PRICES_VARIABLE}: {itype}.{kind} is {price!r}; use a price in USD "
                                      "per instance-hour (a number >= 0)")
        out[str(itype)] = {k: float(v) for k, v in prices.items()}
    return out


def load_price_table() -> dict[str, dict[str, float]]:
    """The deployment's price table (empty when the Variable is not set)."""
    return parse_price_table(get_setting("cost_prices"))


def hourly_price(table: Mapping[str, Mapping[str, float]], instance_type: str | None,
                 capacity: str) -> tuple[float | None, str]:
    """The price per instance-hour of ``instance_type`` on ``capacity``, and where it came from (or why none).

    An unknown capacity is priced on-demand (an upper bound); a spot attempt without a spot price too.
    """
    if not instance_type:
        return None, "instance type unknown (set the Variable isaaclab_cost_instance_type)"
    entry = table.get(instance_type) or table.get("default")
    if not entry:
        return None, f"no price for {instance_type} in the Variable {PRICES_VARIABLE}"
    which = "spot" if capacity == SPOT and "spot" in entry else "onDemand"
    if which not in entry:
        return None, f"no on-demand price for {instance_type} in the Variable {PRICES_VARIABLE}"
    key = instance_type if instance_type in table else "default"
    return entry[which], f"{PRICES_VARIABLE}[{key}].{which}"


# Batch jobs

def _seconds(start_ms: Any, stop_ms: Any, now: float) -> float:
    if not isinstance(start_ms, int | float):
        return 0.0
    stop = stop_ms / 1000 if isinstance(stop_ms, int | float) else now
    return max(0.0, stop - start_ms / 1000)


def _iso(ms: Any) -> str | None:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat() if isinstance(ms, int | float) else None


def gpus(requirements: Any) -> int:
    """GPUs in a container's ``resourceRequirements`` (0 when none are reserved)."""
    for req in requirements or []:
        if isinstance(req, Mapping) and req.get("type") == "GPU":
            return int(req.get("value") or 0)
    return 0


def node_shape(job: Mapping[str, Any]) -> tuple[int, int, str | None]:
    """(nodes, GPUs over all nodes, instance type named by the job) of a described job.

    A multi-node parallel job's node ranges (``"0:"``, ``"0:3"``, ``"4"``) each give their GPUs per node.
    """
    props = job.get("nodeProperties") or {}
    nodes = int(props.get("numNodes") or 0)
    if nodes <= 0:
        container = job.get("container") or {}
        return 1, gpus(container.get("resourceRequirements")), container.get("instanceType")
    total, itype = 0, None
    for rng in props.get("nodeRangeProperties") or []:
        first, _, last = str(rng.get("targetNodes", "0:")).partition(":")
        lo = int(first or 0)
        hi = (int(last) if last else nodes - 1) if ":" in str(rng.get("targetNodes", "0:")) else lo
        container = rng.get("container") or {}
        total += max(0, min(hi, nodes - 1) - lo + 1) * gpus(container.get("resourceRequirements"))
        itype = itype or container.get("instanceType")
    return nodes, total, itype


def attempts(job: Mapping[str, Any], now: float) -> list[dict[str, Any]]:
    """The job's attempts (finished ones, then the running one), each with its seconds and container instance."""
    out = []
    for a in job.get("attempts") or []:
        out.append({"startedAt": a.get("startedAt"), "stoppedAt": a.get("stoppedAt"),
                    "seconds": _seconds(a.get("startedAt"), a.get("stoppedAt"), now),
                    "statusReason": a.get("statusReason", ""),
                    "containerInstanceArn": (a.get("container") or {}).get("containerInstanceArn")})
    started = job.get("startedAt")
    last_stop = max((a["stoppedAt"] or 0 for a in out), default=0)
    if job.get("status") in ("RUNNING", "STARTING") and isinstance(started, int | float) and started >= last_stop:
        out.append({"startedAt": started, "stoppedAt": None, "seconds": _seconds(started, None, now),
                    "statusReason": "running",
                    "containerInstanceArn": (job.get("container") or {}).get("containerInstanceArn")})
    elif not out and isinstance(started, int | float):  # a job described without its attempts
        out.append({"startedAt": started, "stoppedAt": job.get("stoppedAt"),
                    "seconds": _seconds(started, job.get("stoppedAt"), now),
                    "statusReason": job.get("statusReason", ""),
                    "containerInstanceArn": (job.get("container") or {}).get("containerInstanceArn")})
    return out


def compute_environment_of(container_instance_arn: str | None) -> tuple[str | None, str | None]:
    """(ECS cluster, Batch compute environment) of a container instance ARN
    (``arn:aws:ecs:<region>:<account>:container-instance/<ce>_Batch_<uuid>/<id>``)."""
    if not container_instance_arn or ":container-instance/" not in container_instance_arn:
        return None, None
    parts = container_instance_arn.split(":container-instance/", 1)[1].split("/")
    if len(parts) < 2:  # the old ARN format names no cluster
        return None, None
    cluster = parts[0]
    return cluster, cluster.split("_Batch_", 1)[0] if "_Batch_" in cluster else None


class InstanceFacts:
    """Instance type and capacity of a container instance, looked up once each through ECS and Batch.

    Each lookup may be refused (the role may lack ``ecs:DescribeContainerInstances`` or
    ``batch:DescribeComputeEnvironments``); a refusal is noted, and the fallbacks apply.

    :param ecs: an ECS client (None: no lookup).
    :param batch: a Batch client (None: no lookup).
    """

    def __init__(self, ecs: Any = None, batch: Any = None) -> None:
        self.ecs = ecs
        self.batch = batch
        self.notes: list[str] = []
        self._types: dict[str, str | None] = {}
        self._capacity: dict[str, str] = {}

    def instance_type(self, arn: str | None) -> str | None:
        """``ecs.instance-type`` of the container instance, or None."""
        cluster, _ = compute_environment_of(arn)
        if not arn or not cluster or self.ecs is None:
            return None
        if arn not in self._types:
            self._types[arn] = None
            try:
                found = self.ecs.describe_container_instances(cluster=cluster, containerInstances=[arn])
                for inst in found.get("containerInstances", []):
                    for attr in inst.get("attributes", []):
                        if attr.get("name") == "ecs.instance-type":
                            self._types[arn] = attr.get("value")
            except Exception as exc:
                self.notes.append(f"instance type of {arn} not looked up ({_short(exc)})")
        return self._types[arn]

    def capacity(self, arn: str | None) -> str:
        """``spot`` or ``on-demand`` from the compute environment's type, else ``unknown``."""
        _, env = compute_environment_of(arn)
        if not env or self.batch is None:
            return UNKNOWN
        if env not in self._capacity:
            self._capacity[env] = UNKNOWN
            try:
                found = self.batch.describe_compute_environments(computeEnvironments=[env])
                for ce in found.get("computeEnvironments", []):
                    kind = (ce.get("computeResources") or {}).get("type", "")
                    self._capacity[env] = _CE_TYPES.get(kind, UNKNOWN)
            except Exception as exc:
                self.notes.append(f"capacity of compute environment {env} not looked up ({_short(exc)})")
        return self._capacity[env]


def _short(exc: Exception) -> str:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
    return code or f"{type(exc).__name__}: {str(exc)[:120]}"


def batch_cost(job: Mapping[str, Any], prices: Mapping[str, Mapping[str, float]], *, facts: InstanceFacts | None = None,
               fallback_instance_type: str | None = None, now: float | None = None) -> dict[str, Any]:
    """The cost of one described Batch job (a DescribeJobs entry): per attempt and in total.

    :param job: the job's DescribeJobs entry (a container job or a multi-node parallel job's parent).
    :param prices: the price table (:func:`parse_price_table`).
    :param facts: ECS/Batch lookups of instance type and capacity (None: none).
    :param fallback_instance_type: the instance type when nothing else names it.
    :param now: the time a running attempt is counted until (epoch seconds; default now).
    :return: the cost.json document.
    """
    now = time.time() if now is None else now
    facts = facts or InstanceFacts()
    nodes, gpu_total, job_itype = node_shape(job)
    multinode = bool((job.get("nodeProperties") or {}).get("numNodes"))
    rows, priced_costs, od_costs, spot_costs, reasons = [], [], [], [], []
    for number, a in enumerate(attempts(job, now), 1):
        itype = job_itype or facts.instance_type(a["containerInstanceArn"]) or fallback_instance_type or None
        capacity = ON_DEMAND if multinode else facts.capacity(a["containerInstanceArn"])
        hours = a["seconds"] / 3600 * nodes
        price, source = hourly_price(prices, itype, capacity)
        od, _ = hourly_price(prices, itype, ON_DEMAND)
        sp, sp_source = hourly_price(prices, itype, SPOT)
        sp = sp if sp_source.endswith(".spot") else None
        rows.append({"attempt": number, "startedAt": _iso(a["startedAt"]), "stoppedAt": _iso(a["stoppedAt"]),
                     "seconds": round(a["seconds"], 3), "instanceType": itype, "capacity": capacity,
                     "pricePerInstanceHourUsd": price, "price": source, "statusReason": a["statusReason"],
                     "costUsd": None if price is None else round(hours * price, 4)})
        priced_costs.append(None if price is None else hours * price)
        od_costs.append(None if od is None else hours * od)
        spot_costs.append(None if sp is None else hours * sp)
        if price is None:
            reasons.append(source)
    waits = timings.queue_waits({"backend": "batch", "externalId": job.get("jobId")}, rows, describe=lambda _: job)
    for row, wait in zip(rows, waits, strict=True):
        row["queueWaitSeconds"] = wait
    seconds = sum(a["seconds"] for a in rows)
    running = any(a["stoppedAt"] is None and a["startedAt"] for a in rows)
    capacities = {a["capacity"] for a in rows}
    out: dict[str, Any] = {
        "backend": "batch", "batchJobId": job.get("jobId"), "status": job.get("status"), "live": running,
        "numNodes": nodes, "gpusPerNode": (gpu_total // nodes) if nodes else 0, "gpus": gpu_total,
        "attempts": rows, "wallSeconds": round(seconds, 3), "instanceSeconds": round(seconds * nodes, 3),
        "queueWaitSeconds": _known_sum(waits),
        "gpuSeconds": round(sum(a["seconds"] for a in rows) * gpu_total, 3),
        "instanceType": rows[-1]["instanceType"] if rows else job_itype or fallback_instance_type,
        "capacity": capacities.pop() if len(capacities) == 1 else ("mixed" if capacities else UNKNOWN),
        "estimatedCostUsd": _total(priced_costs), "estimatedCostOnDemandUsd": _total(od_costs),
        "estimatedCostSpotUsd": _total(spot_costs),
        "notes": sorted(set(reasons)) + facts.notes,
    }
    if UNKNOWN in {a["capacity"] for a in rows} and out["estimatedCostUsd"] is not None:
        out["notes"].append("capacity unknown: priced on-demand (an upper bound)")
    return out


def _known_sum(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known), 3) if known else None


def _total(costs: list[float | None]) -> float | None:
    return None if not costs or any(c is None for c in costs) else round(sum(c for c in costs if c is not None), 4)


# Entry points

def cost_of(handle: Mapping[str, Any], aws_conn_id: str | None = "aws_default",
            describe: Callable[[str], Mapping[str, Any]] | None = None, facts: InstanceFacts | None = None,
            now: float | None = None) -> dict[str, Any]:
    """The cost of a submitted job from its handle (the submit step's XCom), worked out by its backend's
    accounting (``backends.accounting``: the local job folder's times, Batch's attempts priced here).

    :param handle: the JobHandle as its dict.
    :param describe: Batch job id → DescribeJobs entry (default: the provider's BatchClientHook).
    :param facts: instance lookups (default: ECS and Batch clients on ``aws_conn_id``).
    """
    from isaaclab_pipeline.backends import accounting

    job = JobHandle.from_dict(handle)
    return accounting(job.backend).job_cost(job, aws_conn_id, describe=describe, facts=facts, now=now)


def record_cost(handle: Mapping[str, Any] | None, staging_uri: str, aws_conn_id: str | None = "aws_default",
                **kwargs: Any) -> dict[str, Any] | None:
    """Write ``cost.json`` to ``{staging}/metrics/`` (published as ``{uuid}/cost.json``); never raises.

    :return: the cost document, or None when it could not be worked out (the reason is logged).
    """
    from isaaclab_pipeline import storage

    if not handle:
        return None
    try:
        doc = cost_of(handle, aws_conn_id, **kwargs)
        training = _training_seconds(staging_uri, aws_conn_id)
        if training is not None:
            doc["trainingSeconds"] = training
        doc["recordedAt"] = datetime.now(UTC).isoformat()
        with tempfile.TemporaryDirectory(prefix="isaaclab-cost-") as tmp:
            path = Path(tmp) / COST_NAME
            path.write_text(json.dumps(doc, indent=2, sort_keys=True))
            uri = storage.join(staging_uri, staging_layout.METRICS_DIR, COST_NAME)
            storage.for_uri(uri, aws_conn_id).upload(path, uri)
    except Exception as exc:  # the cost is a report: it never fails a run that trained
        log.warning("Cost of job %s not recorded: %s: %s", JobHandle.from_dict(handle).job_id, type(exc).__name__, exc)
        return None
    log.info("Cost of job %s: %s", JobHandle.from_dict(handle).job_id, format_cost(doc))
    return doc


def _training_seconds(staging_uri: str, aws_conn_id: str | None) -> float | None:
    """The runner's training time summed over attempts (``result.json``'s ``timings.training``), or None."""
    from isaaclab_pipeline import storage

    uri = storage.join(staging_uri, staging_layout.RESULT)
    try:
        raw = storage.for_uri(uri, aws_conn_id).read_bytes(uri)
        value = ((json.loads(raw) if raw else {}).get("timings") or {}).get("training")
    except Exception as exc:  # the cost stands without it
        log.warning("Training time not read from %s: %s: %s", uri, type(exc).__name__, exc)
        return None
    return round(float(value), 3) if isinstance(value, int | float) else None


def format_cost(doc: Mapping[str, Any] | None) -> str:
    """One line: wall time, GPU-hours, the estimate (or why there is none)."""
    if not doc:
        return "unknown"
    parts = []
    if doc.get("queueWaitSeconds") is not None:
        parts.append(f"queued {doc['queueWaitSeconds'] / 60:.1f} min")
    if doc.get("wallSeconds") is not None:
        parts.append(f"wall {doc['wallSeconds'] / 60:.1f} min")
    if doc.get("trainingSeconds") is not None:
        parts.append(f"training {doc['trainingSeconds'] / 60:.1f} min")
    if doc.get("gpuSeconds") is not None:
        parts.append(f"{doc['gpuSeconds'] / 3600:.2f} GPU-h on {doc.get('numNodes', 1)} node(s)")
    if doc.get("estimatedCostUsd") is not None:
        parts.append(f"~${doc['estimatedCostUsd']:.2f} ({doc.get('capacity')}, {doc.get('instanceType')})")
    elif doc.get("backend") == "batch":
        parts.append("no price: " + "; ".join(doc.get("notes") or ["?"]))
    return ", ".join(parts) or "unknown"


def summary(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The few cost figures VAMS and the runs view show."""
    if not doc:
        return None
    keys = ("backend", "trials", "wallSeconds", "queueWaitSeconds", "trainingSeconds", "gpuSeconds", "instanceType",
            "capacity", "numNodes",
            "estimatedCostUsd", "estimatedCostOnDemandUsd", "estimatedCostSpotUsd", "live")
    return {k: doc[k] for k in keys if doc.get(k) is not None}


def total(docs: list[Mapping[str, Any]]) -> dict[str, Any] | None:
    """A run's cost: its one job's, or the sum over a sweep's trials.

    A sum is given only where every trial has the figure (one unpriced trial leaves no total price, rather than a
    low one); documents with an ``error`` do not count.
    """
    good = [c for c in docs if not c.get("error")]
    if not good:
        return dict(docs[0]) if docs else None
    if len(good) == 1:
        return dict(good[0])
    out: dict[str, Any] = {"trials": len(good), "live": any(c.get("live") for c in good)}
    backends = {c.get("backend") for c in good}
    if len(backends) == 1:
        out["backend"] = backends.pop()
    for key in ("wallSeconds", "queueWaitSeconds", "trainingSeconds", "gpuSeconds", "estimatedCostUsd"):
        values = [c.get(key) for c in good]
        if all(v is not None for v in values):
            out[key] = round(sum(values), 4)
    return out
