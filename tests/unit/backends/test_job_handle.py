"""The job handle's XCom: camelCase keys like the JobSpec's; a handle a run pushed before the change (snake_case)
still reads."""

from __future__ import annotations

from isaaclab_pipeline.backends.base import JobHandle

HANDLE = JobHandle("batch", "3820de01-3227-5a3a-a74b-fbb13167296b", "0f1e2d3c-batch-job",
                   {"regionName": "eu-west-1", "jobQueue": "gpu"}, "s3://stage/isaaclab/3820de01")


def test_the_xcom_value_is_camel_case_and_reads_back() -> None:
    value = HANDLE.to_dict()
    assert value == {"backend": "batch", "jobId": HANDLE.job_id, "externalId": "0f1e2d3c-batch-job",
                     "details": {"regionName": "eu-west-1", "jobQueue": "gpu"},
                     "stagingUri": "s3://stage/isaaclab/3820de01"}
    assert JobHandle.from_dict(value) == HANDLE


def test_a_snake_case_handle_of_an_earlier_run_still_reads() -> None:
    old = {"backend": "batch", "job_id": HANDLE.job_id, "external_id": "0f1e2d3c-batch-job",
           "details": {"regionName": "eu-west-1", "jobQueue": "gpu"}, "staging_uri": "s3://stage/isaaclab/3820de01"}
    assert JobHandle.from_dict(old) == HANDLE
    assert JobHandle.from_dict({"backend": "local", "externalId": "/jobs/x"}) == JobHandle("local", "", "/jobs/x")
