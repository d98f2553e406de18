"""Extra links of the wait step: the Batch job in the console and its CloudWatch log stream.

Thin subclasses of the provider's links (same URL formats); our own keys keep them apart from a BatchOperator's.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.links.batch import BatchJobDetailsLink
from airflow.providers.amazon.aws.links.logs import CloudWatchEventsLink


class IsaacLabBatchJobLink(BatchJobDetailsLink):
    """The Batch job's page in the AWS console."""

    name = "Batch job"
    key = "isaaclab_batch_job"


class IsaacLabJobLogLink(CloudWatchEventsLink):
    """The job's CloudWatch log stream (the newest attempt's; the main node's for multi-node jobs)."""

    name = "Job log (CloudWatch)"
    key = "isaaclab_job_log"
