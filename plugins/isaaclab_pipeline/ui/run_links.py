"""The runs view's links: a run's Airflow page, the Batch job and CloudWatch log (the provider's link formats), an
S3 folder in the console."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from isaaclab_pipeline.config import DAG_ID


def airflow_run_link(run_id: str) -> str:
    """The run's page in the Airflow UI."""
    return f"/dags/{quote(DAG_ID)}/runs/{quote(run_id, safe='')}"


def console_link(key: str, value: Any) -> str | None:
    """A Batch job or CloudWatch log link from the link values the wait step stored (the provider's formats)."""
    if not isinstance(value, Mapping) or not value:
        return None
    from isaaclab_pipeline.links import IsaacLabBatchJobLink, IsaacLabJobLogLink

    link = {IsaacLabBatchJobLink.key: IsaacLabBatchJobLink, IsaacLabJobLogLink.key: IsaacLabJobLogLink}[key]()
    try:
        return link.format_link(**value) or None
    except Exception:
        return None


def s3_console_link(uri: str, region: str | None = None) -> str | None:
    """The S3 console's page of an ``s3://`` folder."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[5:].partition("/")
    prefix = key.rstrip("/") + "/" if key else ""
    tail = f"&region={region}" if region else ""
    return f"https://s3.console.aws.amazon.com/s3/buckets/{bucket}?prefix={quote(prefix)}{tail}"
