"""S3 faults while converting and publishing, injected with botocore event hooks against a moto server.

The rule under test: the output folder never holds files without a manifest.json that lists them, whatever call
fails; a retry (Airflow's) publishes the whole layout; staged keys that would leave the scratch folder are refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fault_injection import Faults, injected, moto_server, reset_moto
from isaaclab_pipeline.publish import publish_outputs
from isaaclab_pipeline.staged_metrics import convert_staged_run

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "fixtures" / "isaaclab_events"
JOB = "3c0c1a9e-5555-4666-8777-b88899990000"
STAGING = f"s3://stage/isaaclab/{JOB}"
OUTPUT = "s3://outputs/team-a"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(endpoint: str, monkeypatch: pytest.MonkeyPatch):
    reset_moto(endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws",
                                                               "extra": {"region_name": "us-east-1"}}))
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    for bucket in ("stage", "outputs"):
        client.create_bucket(Bucket=bucket)
    return client


def _stage(s3, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        s3.put_object(Bucket="stage", Key=f"isaaclab/{JOB}/{key}", Body=data)


def _staged_run(s3) -> None:
    """What a finished training stages: events, two checkpoints, params, the runner's log and result."""
    files = {f"run/{p.name}": p.read_bytes() for p in EVENTS.iterdir()}
    files.update({"checkpoints/rsl_rl/cartpole/2026-11-30_10-00-00/model_0.pt": b"m0",
                  "checkpoints/rsl_rl/cartpole/2026-11-30_10-00-00/model_4.pt": b"m4",
                  "run/params/env.yaml": b"seed: 1\n", "runner.log": b"trained\n",
                  "result.json": json.dumps({"status": "succeeded", "runDir": "2026-11-30_10-00-00"}).encode()})
    _stage(s3, files)


def _output(s3) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket="outputs", Prefix=f"team-a/{JOB}/").get("Contents", [])
    return {o["Key"].split(f"{JOB}/", 1)[1]: s3.get_object(Bucket="outputs", Key=o["Key"])["Body"].read()
            for o in listed}


def _assert_complete(files: dict[str, bytes]) -> None:
    manifest = json.loads(files["manifest.json"])
    assert manifest["files"] and {e["path"] for e in manifest["files"]} == set(files) - {"manifest.json"}
    for entry in manifest["files"]:
        data = files[entry["path"]]
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


def _publish() -> dict:
    return publish_outputs(STAGING, OUTPUT, {"trainingConfig": {"task": "T"}}, JOB)


@pytest.mark.parametrize(("operation", "code", "status", "nth"), [
    ("PutObject", "SlowDown", 503, 3),  # throttled in the middle of the upload
    ("PutObject", "InternalError", 500, 1),  # the first upload
    ("PutObject", "AccessDenied", 403, 0),  # the manifest itself (matched by key below)
])
def test_a_failed_publish_leaves_no_file_without_a_manifest(s3, operation: str, code: str, status: int,
                                                             nth: int) -> None:
    _staged_run(s3)
    convert_staged_run(STAGING)
    faults = Faults()
    seen = {"n": 0}

    def nth_upload(params: dict) -> bool:
        if not params.get("Key", "").startswith(f"team-a/{JOB}/"):
            return False
        if nth == 0:
            return params["Key"].endswith("/manifest.json")
        seen["n"] += 1
        return seen["n"] == nth

    rule = faults.fail("s3", operation, code, status, times=1, when=nth_upload)
    with injected(faults), pytest.raises(Exception, match=code):
        _publish()
    assert rule.hits == 1
    assert _output(s3) == {}  # what was uploaded was taken back
    result = _publish()  # Airflow's retry
    files = _output(s3)
    _assert_complete(files)
    assert result["files"] == len(files) - 1
    assert {"checkpoints/model_0.pt", "checkpoints/model_4.pt", "metrics.csv", "summary.json"} <= set(files)


def test_a_failed_read_of_staging_touches_no_output(s3) -> None:
    _staged_run(s3)
    convert_staged_run(STAGING)
    _publish()
    before = _output(s3)
    faults = Faults()
    faults.fail("s3", "GetObject", "SlowDown", 503, times=-1, when=lambda p: p.get("Bucket") == "stage")
    faults.fail("s3", "HeadObject", "SlowDown", 503, times=-1, when=lambda p: p.get("Bucket") == "stage")
    with injected(faults), pytest.raises(Exception):  # noqa: B017 - boto3's or s3transfer's wrapper of SlowDown
        _publish()
    assert _output(s3) == before  # the earlier complete publish is untouched


def test_throttled_listing_fails_convert_and_a_retry_converts(s3) -> None:
    _staged_run(s3)
    faults = Faults()
    faults.fail("s3", "ListObjectsV2", "SlowDown", 503, times=1)
    with injected(faults), pytest.raises(Exception, match="SlowDown"):
        convert_staged_run(STAGING)
    result = convert_staged_run(STAGING)
    assert result["steps"] > 0 and result["problems"] == []


def test_hostile_staged_keys_are_refused_by_convert_and_publish(s3, tmp_path: Path) -> None:
    """A job (its env package included) stages keys that would land outside the worker's scratch folder."""
    _staged_run(s3)
    events = next(EVENTS.iterdir()).read_bytes()
    hostile = {f"run/../../../../..{tmp_path}/escaped.events.out.tfevents.1": events,
               f"run/..//..{tmp_path}/escaped2.txt": b"x", "run/./params/agent.yaml": b"x",
               "checkpoints/../../model_99.pt": b"x"}
    _stage(s3, hostile)
    result = convert_staged_run(STAGING)
    assert len(result["refusedKeys"]) == 3  # the three under run/ (convert lists run/ only)
    published = _publish()
    assert published["refusedKeys"] == len(hostile)
    files = _output(s3)
    _assert_complete(files)
    manifest = json.loads(files["manifest.json"])
    assert sorted(r["key"] for r in manifest["refusedKeys"]) == sorted(hostile)
    assert list(tmp_path.iterdir()) == []
    assert "model_99.pt" not in "".join(files)


def test_a_corrupt_event_file_still_publishes_the_checkpoints_and_reports_it(s3) -> None:
    """One bit flipped in a record of the events: convert keeps what precedes it, says where, and publish goes on."""
    _staged_run(s3)
    name = next(p.name for p in EVENTS.iterdir())
    data = bytearray((EVENTS / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    _stage(s3, {f"run/{name}": bytes(data)})
    result = convert_staged_run(STAGING)
    [problem] = result["problems"]
    assert problem["file"] == name and "CRC" in problem["reason"] and problem["recordsKept"] > 0
    _publish()
    files = _output(s3)
    _assert_complete(files)
    assert {"checkpoints/model_0.pt", "checkpoints/model_4.pt", "metrics.csv", "metrics-problems.json"} <= set(files)
    assert json.loads(files["metrics-problems.json"])["problems"][0]["offset"] == problem["offset"]
