"""Cost per run: GPU-seconds and the estimate from Batch DescribeJobs answers (single- and multi-node), the price
table, the lookups that may be refused, a running job, the local wall time, and cost.json's place in the outputs.

The DescribeJobs answers under tests/fixtures/batch/ have the shape of the Batch API reference (JobDetail,
AttemptDetail, NodeProperties), with made-up ids and times.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from isaaclab_pipeline import cost, timings
from isaaclab_pipeline.backends.local import local_cost
from isaaclab_pipeline.publish import output_name

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "batch"
PRICES = {"g6.xlarge": {"onDemand": 0.8048, "spot": 0.30}, "g6.12xlarge": {"onDemand": 4.6016, "spot": 1.90}}
SPOT_CE, ONDEMAND_CE = "isaaclab-training-spot", "isaaclab-training-ondemand"


def usd(value: float):
    """Costs are rounded to 1/100 of a cent."""
    return pytest.approx(value, abs=1e-4)


def described(name: str) -> dict:
    return json.loads((FIXTURES / f"describe-jobs-{name}.json").read_text())["jobs"][0]


class FakeEcs:
    """describe_container_instances of the container instances in the fixtures."""

    def __init__(self, instance_type: str) -> None:
        self.instance_type = instance_type
        self.calls: list[tuple[str, list[str]]] = []

    def describe_container_instances(self, cluster: str, containerInstances: list[str]) -> dict:  # noqa: N803
        self.calls.append((cluster, containerInstances))
        return {"containerInstances": [{"containerInstanceArn": containerInstances[0], "attributes": [
            {"name": "ecs.os-type", "value": "linux"}, {"name": "ecs.instance-type", "value": self.instance_type}]}]}


class FakeBatch:
    """describe_compute_environments of the stack's two compute environments."""

    def describe_compute_environments(self, computeEnvironments: list[str]) -> dict:  # noqa: N803
        kinds = {SPOT_CE: "SPOT", ONDEMAND_CE: "EC2"}
        return {"computeEnvironments": [{"computeEnvironmentName": n, "computeResources": {"type": kinds[n]}}
                                        for n in computeEnvironments if n in kinds]}


class Refusing:
    """A client whose every call is refused, as for a role without the read permissions."""

    def __getattr__(self, name: str):
        def refuse(**_: object) -> None:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, name)

        return refuse


def test_single_node_spot_reclaim_then_on_demand() -> None:
    ecs = FakeEcs("g6.xlarge")
    doc = cost.batch_cost(described("single-node"), PRICES, facts=cost.InstanceFacts(ecs, FakeBatch()))
    first, second = doc["attempts"]
    # attempt 1: 20 min on spot, reclaimed (billed too); attempt 2: 30 min on on-demand
    assert (first["seconds"], first["capacity"], first["instanceType"]) == (1200.0, "spot", "g6.xlarge")
    assert first["statusReason"].startswith("Host EC2")
    assert (second["seconds"], second["capacity"]) == (1800.0, "on-demand")
    assert first["costUsd"] == usd(1200 / 3600 * 0.30)
    assert second["costUsd"] == usd(1800 / 3600 * 0.8048)
    assert doc["gpuSeconds"] == 3000.0 and doc["gpus"] == 1 and doc["numNodes"] == 1
    assert doc["wallSeconds"] == doc["instanceSeconds"] == 3000.0
    assert doc["estimatedCostUsd"] == usd(0.1 + 0.4024)
    assert doc["estimatedCostOnDemandUsd"] == usd(3000 / 3600 * 0.8048)
    assert doc["estimatedCostSpotUsd"] == usd(3000 / 3600 * 0.30)
    assert (doc["capacity"], doc["live"], doc["notes"]) == ("mixed", False, [])
    # each container instance is looked up once, in its own cluster
    assert [c for c, _ in ecs.calls] == [
        "isaaclab-training-spot_Batch_0b1c2d3e-4f50-3a6b-9c7d-8e9f0a1b2c3d",
        "isaaclab-training-ondemand_Batch_5d6e7f80-91a2-3b4c-8d5e-6f708192a3b4"]


def test_multi_node_counts_every_node_and_is_on_demand() -> None:
    job = described("multi-node")
    doc = cost.batch_cost(job, PRICES, facts=cost.InstanceFacts(FakeEcs("g6.12xlarge"), Refusing()))
    [attempt] = doc["attempts"]
    assert (doc["numNodes"], doc["gpusPerNode"], doc["gpus"]) == (2, 4, 8)
    assert attempt["seconds"] == 3600.0
    assert doc["gpuSeconds"] == 3600.0 * 8  # 8 GPU-hours
    assert doc["instanceSeconds"] == 7200.0
    # Batch runs no multi-node job on Spot: on-demand without asking (the refusing Batch client is never called)
    assert attempt["capacity"] == doc["capacity"] == "on-demand"
    assert doc["estimatedCostUsd"] == usd(2 * 4.6016)
    assert doc["notes"] == []


def test_instance_type_named_by_the_node_range_needs_no_lookup() -> None:
    job = described("multi-node")
    job["nodeProperties"]["nodeRangeProperties"] = [
        {"targetNodes": "0:0", "container": {"instanceType": "g6.12xlarge",
                                              "resourceRequirements": [{"type": "GPU", "value": "4"}]}},
        {"targetNodes": "1:", "container": {"resourceRequirements": [{"type": "GPU", "value": "2"}]}}]
    doc = cost.batch_cost(job, PRICES, facts=cost.InstanceFacts(Refusing(), Refusing()))
    assert (doc["gpus"], doc["instanceType"]) == (6, "g6.12xlarge")
    assert doc["gpuSeconds"] == 3600.0 * 6


def test_refused_lookups_fall_back_and_say_so() -> None:
    doc = cost.batch_cost(described("single-node"), PRICES, facts=cost.InstanceFacts(Refusing(), Refusing()),
                          fallback_instance_type="g6.xlarge")
    assert {a["instanceType"] for a in doc["attempts"]} == {"g6.xlarge"}
    assert doc["capacity"] == "unknown"
    assert doc["estimatedCostUsd"] == usd(3000 / 3600 * 0.8048)  # unknown capacity: on-demand
    notes = "\n".join(doc["notes"])
    assert "AccessDeniedException" in notes and "priced on-demand (an upper bound)" in notes


def test_no_price_gives_gpu_seconds_and_the_reason() -> None:
    doc = cost.batch_cost(described("multi-node"), {}, facts=cost.InstanceFacts(FakeEcs("p5.48xlarge")))
    assert doc["gpuSeconds"] == 28800.0
    assert doc["estimatedCostUsd"] is None
    assert doc["notes"] == ["no price for p5.48xlarge in the Variable isaaclab_cost_prices"]
    assert "no price" in cost.format_cost(doc)
    unknown = cost.batch_cost(described("multi-node"), PRICES)
    assert unknown["estimatedCostUsd"] is None and "instance type unknown" in unknown["notes"][0]


def test_default_price_entry() -> None:
    doc = cost.batch_cost(described("multi-node"), {"default": {"onDemand": 3.0}},
                          facts=cost.InstanceFacts(FakeEcs("g5.12xlarge")))
    assert doc["estimatedCostUsd"] == usd(2 * 3.0)
    assert doc["attempts"][0]["price"] == "isaaclab_cost_prices[default].onDemand"


def test_a_running_job_is_counted_until_now() -> None:
    job = described("single-node")
    job.update(status="RUNNING", stoppedAt=None)
    job["attempts"] = job["attempts"][:1]  # the reclaimed attempt; the second is running
    now = job["startedAt"] / 1000 + 600
    doc = cost.batch_cost(job, PRICES, facts=cost.InstanceFacts(FakeEcs("g6.xlarge"), FakeBatch()), now=now)
    assert [a["seconds"] for a in doc["attempts"]] == [1200.0, 600.0]
    assert doc["attempts"][1]["stoppedAt"] is None and doc["live"] is True
    assert doc["gpuSeconds"] == 1800.0


def test_price_table_is_checked_naming_the_entry() -> None:
    assert cost.parse_price_table(None) == {} and cost.parse_price_table("  ") == {}
    assert cost.parse_price_table('{"g6.xlarge": {"onDemand": 1, "spot": 0.5}}') == {
        "g6.xlarge": {"onDemand": 1.0, "spot": 0.5}}
    for raw, match in (("[1]", "JSON object"), ("{", "not JSON"), ('{"g6.xlarge": 0.8}', "g6.xlarge"),
                       ('{"g6.xlarge": {"ondemand": 1}}', "g6.xlarge"),
                       ('{"g6.xlarge": {"onDemand": -1}}', "g6.xlarge.onDemand"),
                       ('{"g6.xlarge": {"spot": true}}', "g6.xlarge.spot")):
        with pytest.raises(cost.PriceTableError, match=match):
            cost.parse_price_table(raw)


def test_price_table_and_instance_type_come_from_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_COST_PRICES", json.dumps(PRICES))
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_COST_INSTANCE_TYPE", "g6.xlarge")
    handle = {"backend": "batch", "job_id": "j", "external_id": "5a6b7c8d", "details": {}}
    doc = cost.cost_of(handle, describe=lambda _id: described("single-node"), facts=cost.InstanceFacts())
    assert doc["instanceType"] == "g6.xlarge" and doc["estimatedCostUsd"] == usd(3000 / 3600 * 0.8048)


def test_local_job_has_its_wall_time_only(tmp_path: Path) -> None:
    jdir = tmp_path / "jobs" / "j1"
    jdir.mkdir(parents=True)
    for name, t in (("spec.json", 1000.0), ("pid", 1001.0), ("attempt", 1001.0), ("exit_code", 1096.5)):
        (jdir / name).write_text("2" if name == "attempt" else "0")
        os.utime(jdir / name, (t, t))
    doc = cost.cost_of({"backend": "local", "external_id": str(jdir)})
    assert (doc["wallSeconds"], doc["attempts"], doc["live"]) == (95.5, 2, False)
    assert doc["queueWaitSeconds"] == 1.0  # spec.json (submitted) -> pid (running)
    assert doc["gpuSeconds"] is None and doc["estimatedCostUsd"] is None
    (jdir / "exit_code").unlink()
    assert local_cost(jdir, now=1101.0) | {} == {**doc, "wallSeconds": 100.0, "live": True}


def test_record_cost_is_published_as_cost_json(tmp_path: Path) -> None:
    jdir = tmp_path / "job"
    jdir.mkdir()
    (jdir / "pid").write_text("1")
    staging = tmp_path / "staging" / "j1"
    doc = cost.record_cost({"backend": "local", "job_id": "j1", "external_id": str(jdir)}, str(staging))
    written = json.loads((staging / "metrics" / "cost.json").read_text())
    assert written["backend"] == "local" and written["wallSeconds"] == doc["wallSeconds"]
    assert output_name("metrics/cost.json") == "cost.json"  # the publish step's layout: {uuid}/cost.json
    assert output_name("metrics/cost.json", evaluation=True) == "cost.json"


def test_queue_wait_is_kept_apart_from_the_running_time(tmp_path: Path) -> None:
    """cost.json's queue wait from the recorded DescribeJobs answers, the same figure as the job's timings."""
    single = described("single-node")
    doc = cost.batch_cost(single, PRICES, facts=cost.InstanceFacts(FakeEcs("g6.xlarge"), FakeBatch()))
    # attempt 1: createdAt -> startedAt; attempt 2 (the retry): attempt 1's stoppedAt -> its own startedAt
    first_wait = (single["attempts"][0]["startedAt"] - single["createdAt"]) / 1000
    second_wait = (single["attempts"][1]["startedAt"] - single["attempts"][0]["stoppedAt"]) / 1000
    assert (first_wait, second_wait) == (100.0, 150.0)
    assert [a["queueWaitSeconds"] for a in doc["attempts"]] == [first_wait, second_wait]
    assert doc["queueWaitSeconds"] == 250.0
    assert doc["wallSeconds"] == 3000.0  # billed: startedAt -> stoppedAt only, the wait is not in it
    attempts = [{"startedAt": 1.0}, {"startedAt": 2.0}]
    handle = {"backend": "batch", "external_id": single["jobId"]}
    assert timings.with_queue_waits({"attempts": attempts}, timings.queue_waits(
        handle, attempts, describe=lambda _id: single))["queueWait"] == doc["queueWaitSeconds"]
    multi = described("multi-node")
    assert cost.batch_cost(multi, PRICES)["queueWaitSeconds"] == (multi["startedAt"] - multi["createdAt"]) / 1000 == 200

    # record_cost: the runner's training time (result.json's timings) beside it, and in the runs view's summary
    staging = tmp_path / "staging" / "j1"
    staging.mkdir(parents=True)
    (staging / "result.json").write_text(json.dumps({"status": "succeeded", "timings": {"training": 2400.5}}))
    handle = {"backend": "batch", "job_id": "j1", "external_id": single["jobId"], "details": {}}
    recorded = cost.record_cost(handle, str(staging), describe=lambda _id: single, facts=cost.InstanceFacts())
    written = json.loads((staging / "metrics" / "cost.json").read_text())
    assert (written["queueWaitSeconds"], written["trainingSeconds"]) == (250.0, 2400.5) == (
        recorded["queueWaitSeconds"], recorded["trainingSeconds"])
    assert {"queueWaitSeconds": 250.0, "trainingSeconds": 2400.5}.items() <= cost.summary(written).items()
    assert "queued 4.2 min" in cost.format_cost(written) and "training 40.0 min" in cost.format_cost(written)
    assert cost.total([written, written])["queueWaitSeconds"] == 500.0


def test_record_cost_never_fails_the_step(tmp_path: Path) -> None:
    def broken(_id: str) -> dict:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DescribeJobs")

    handle = {"backend": "batch", "job_id": "j", "external_id": "x", "details": {}}
    assert cost.record_cost(handle, str(tmp_path / "staging"), describe=broken, facts=cost.InstanceFacts()) is None
    assert cost.record_cost(None, str(tmp_path)) is None


def test_container_instance_arn_names_the_compute_environment() -> None:
    arn = ("arn:aws:ecs:us-east-1:123456789012:container-instance/"
           "isaaclab-training-spot_Batch_0b1c2d3e-4f50-3a6b-9c7d-8e9f0a1b2c3d/7f1e2d3c")
    assert cost.compute_environment_of(arn) == ("isaaclab-training-spot_Batch_0b1c2d3e-4f50-3a6b-9c7d-8e9f0a1b2c3d",
                                                "isaaclab-training-spot")
    assert cost.compute_environment_of("arn:aws:ecs:us-east-1:1:container-instance/7f1e2d3c") == (None, None)
    assert cost.compute_environment_of(None) == (None, None)


def test_vams_success_output_carries_the_cost(tmp_path: Path) -> None:
    from isaaclab_pipeline.config import job_uuid
    from isaaclab_pipeline.vams.callbacks import success_output

    run_id = "vams__cost"
    out = tmp_path / job_uuid("isaac-lab-training", run_id)
    out.mkdir()
    doc = cost.batch_cost(described("multi-node"), PRICES, facts=cost.InstanceFacts(FakeEcs("g6.12xlarge")))
    (out / "cost.json").write_text(json.dumps(doc))
    (out / "summary.json").write_text(json.dumps({"best_mean_reward": {"value": 3.5, "step": 3}, "tags": {}}))
    conf = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}, "outputS3Path": str(tmp_path),
            "vams": {"callback": True}}
    output = success_output(conf, "isaac-lab-training", run_id)
    assert output["metrics"] == {"bestMeanReward": 3.5, "bestMeanRewardStep": 3}
    assert output["cost"] == {"backend": "batch", "wallSeconds": 3600.0, "gpuSeconds": 28800.0,
                              "instanceType": "g6.12xlarge", "capacity": "on-demand", "numNodes": 2,
                              "estimatedCostUsd": usd(9.2032), "estimatedCostOnDemandUsd": usd(9.2032),
                              "estimatedCostSpotUsd": usd(2 * 1.90), "live": False,
                              "queueWaitSeconds": 200.0}
    (out / "cost.json").unlink()  # a run published before cost.json existed: no cost, nothing else changes
    assert "cost" not in success_output(conf, "isaac-lab-training", run_id)
