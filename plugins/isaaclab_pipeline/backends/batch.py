"""The AWS Batch backend: one container job (``numNodes: 1``) or a multi-node parallel job (``numNodes > 1``).

Every AWS call goes through the amazon provider's ``BatchClientHook`` (describe, terminate, log streams) and
``AwsLogsHook`` (log lines). What is ours: the submit request built from the deployment settings, and
idempotency: the job name and tags derive from the DAG run and job UUID, so a retried submit step finds the job
it already submitted (ListJobs by name, DescribeJobs for the tag) and reattaches; only a job that ended in
failure is submitted again, and then from an empty staging folder (the old one's files are archived, so the new job
neither resumes from them nor publishes them). Transient AWS errors (throttling, 5xx, timeouts) are retried with
backoff; a SubmitJob that failed that way is retried only after ListJobs shows it did not go through.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from isaaclab_pipeline import staging_layout, storage
from isaaclab_pipeline.aws_retry import backoff_delay, is_transient, retry_transient
from isaaclab_pipeline.backends.base import (
    JobHandle,
    JobState,
    JobStatus,
    Poll,
    PollerSpec,
)
from isaaclab_pipeline.backends.staging_archive import archive_staging
from isaaclab_pipeline.jobspec import JobSpec
from isaaclab_pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

SUBMIT_ATTEMPTS = 4
NAME_MAX = 128  # Batch job names: letters, digits, hyphens, underscores, at most 128 characters
TAG_JOB_ID = "isaaclab:jobId"
TAG_DAG_RUN_ID = "isaaclab:dagRunId"
# The same rule the job definitions carry (CloudFormation), sent explicitly: spot reclaims and SIGTERM exits
# (the runner exits 143 after staging its checkpoints) get a new attempt, which resumes; anything else is final.
RETRY_STRATEGY: dict[str, Any] = {
    "attempts": 3,
    "evaluateOnExit": [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onExitCode": "143", "action": "RETRY"},
        {"onReason": "*", "action": "EXIT"},
    ],
}
_STATES = {"SUBMITTED": JobState.PENDING, "PENDING": JobState.PENDING, "RUNNABLE": JobState.PENDING,
           "STARTING": JobState.PENDING, "RUNNING": JobState.RUNNING, "SUCCEEDED": JobState.SUCCEEDED,
           "FAILED": JobState.FAILED}


def batch_job_name(job_id: str, dag_run_id: str | None) -> str:
    """Return the Batch job name of a run: ``isaaclab-<job uuid>-<dag run id, sanitized>``, at most 128 chars.

    The UUID comes first, so truncating a long run id never makes two runs' names collide.
    """
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", dag_run_id or "").strip("-")
    return (f"isaaclab-{job_id}-{slug}" if slug else f"isaaclab-{job_id}")[:NAME_MAX].rstrip("-")


def runner_command(spec_uri: str) -> list[str]:
    """The container command: the task runner on the staged spec (the image's entrypoint runs it)."""
    return ["python", "-m", "isaaclab_runner", "run", "--spec", spec_uri]


class BatchBackend:
    """Submits JobSpecs to AWS Batch with the job queue and job definitions of the deployment settings.

    :param settings: deployment settings (``isaaclab_batch_*`` Variables, staging URI, AWS connection).
    :param dag_run_id: the DAG run submitting; goes into the job name and tags.
    :param hook: a ``BatchClientHook`` to use (tests); built from ``settings.aws_conn_id`` otherwise.
    """

    name = "batch"

    def __init__(self, settings: PipelineSettings, dag_run_id: str | None = None, hook: Any = None) -> None:
        self.settings = settings
        self.dag_run_id = dag_run_id or ""
        self._hook = hook

    @cached_property
    def hook(self) -> Any:
        """The provider's BatchClientHook on the deployment's AWS connection."""
        if self._hook is not None:
            return self._hook
        from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook

        return BatchClientHook(aws_conn_id=self.settings.aws_conn_id)

    # Submit

    def submit(self, spec: JobSpec) -> JobHandle:
        """Submit ``spec`` unless a job of it exists that has not failed (then reattach to the newest one).

        :raises ValueError: if a deployment setting the job needs is missing.
        """
        self._check_settings(spec)
        spec = dataclasses.replace(spec, gpus_per_node=self.settings.batch_gpus_per_node)
        job_name = batch_job_name(spec.job_id, self.dag_run_id)
        jobs = self.find_jobs(job_name, spec.job_id)
        live = [j for j in jobs if j["status"] != "FAILED"]
        if live:
            job = live[-1]
            log.info("Batch job %s (%s) already submitted for job %s, status %s; reattaching",
                     job_name, job["jobId"], spec.job_id, job["status"])
            return self._handle(spec, job["jobId"], job_name)
        if jobs:
            log.info("%d earlier Batch job(s) of job %s failed (%s); submitting a new one", len(jobs), spec.job_id,
                     ", ".join(j["jobId"] for j in jobs))
        archive_staging(spec.staging_uri, self.settings.aws_conn_id)
        spec_uri = retry_transient(lambda: self._stage_spec(spec), what="staging the job spec")
        request = self.submit_request(spec, job_name, spec_uri)
        for attempt in range(SUBMIT_ATTEMPTS):
            try:
                response = self.hook.client.submit_job(**request)
                break
            except Exception as exc:
                if not is_transient(exc) or attempt == SUBMIT_ATTEMPTS - 1:
                    raise
                log.warning("SubmitJob failed (%s: %s); checking whether it went through before retrying",
                            type(exc).__name__, exc)
                time.sleep(backoff_delay(attempt, 2.0, 30.0))
                live = [j for j in self.find_jobs(job_name, spec.job_id) if j["status"] != "FAILED"]
                if live:
                    log.info("The failed SubmitJob went through: Batch job %s; reattaching", live[-1]["jobId"])
                    return self._handle(spec, live[-1]["jobId"], job_name)
        log.info("Submitted Batch job %s (%s) to queue %s with %s", job_name, response["jobId"],
                 request["jobQueue"], request["jobDefinition"])
        return self._handle(spec, response["jobId"], job_name)

    def submit_request(self, spec: JobSpec, job_name: str, spec_uri: str) -> dict[str, Any]:
        """Return the SubmitJob request of ``spec``: a container job, or a multi-node parallel job for
        ``numNodes > 1`` (every node runs the same command; the runner reads its node index from Batch)."""
        gpus = self.settings.batch_gpus_per_node
        overrides = {
            "command": runner_command(spec_uri),
            "resourceRequirements": [{"type": "GPU", "value": str(gpus)}],
            "environment": [{"name": "ISAACLAB_JOB_ID", "value": spec.job_id}],
        }
        request: dict[str, Any] = {
            "jobName": job_name,
            "jobQueue": self.job_queue(spec.num_nodes),
            "retryStrategy": RETRY_STRATEGY,
            "tags": {TAG_JOB_ID: spec.job_id, TAG_DAG_RUN_ID: self.dag_run_id or "none"},
            "propagateTags": True,
        }
        if spec.num_nodes > 1:
            request["jobDefinition"] = self.settings.batch_multinode_job_definition
            request["nodeOverrides"] = {
                "numNodes": spec.num_nodes,
                "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": overrides}],
            }
        else:
            request["jobDefinition"] = self.settings.batch_job_definition
            request["containerOverrides"] = overrides
        if self.settings.batch_max_runtime_s:
            request["timeout"] = {"attemptDurationSeconds": max(60, self.settings.batch_max_runtime_s)}
        return request

    def find_jobs(self, job_name: str, job_id: str) -> list[dict[str, Any]]:
        """Return the descriptions of every Batch job named ``job_name`` and tagged with ``job_id``, oldest first.

        ListJobs with a name filter returns jobs in every status (including finished ones still listed).
        """
        client = self.hook.client
        ids: list[str] = []
        for queue in dict.fromkeys((self.job_queue(1), self.job_queue(2))):  # each distinct queue once
            token = None
            while True:
                kwargs: dict[str, Any] = {"jobQueue": queue, "filters": [{"name": "JOB_NAME", "values": [job_name]}]}
                if token:
                    kwargs["nextToken"] = token
                page = retry_transient(lambda kw=kwargs: client.list_jobs(**kw), what="ListJobs")
                ids += [j["jobId"] for j in page.get("jobSummaryList", []) if j.get("jobName") == job_name]
                token = page.get("nextToken")
                if not token:
                    break
        jobs = []
        for chunk in _chunks(ids, 100):
            jobs += retry_transient(lambda c=chunk: client.describe_jobs(jobs=c), what="DescribeJobs").get("jobs", [])
        # the tag tells our job from a same-named one of someone else's (names are not unique in Batch)
        mine = [j for j in jobs if (j.get("tags") or {}).get(TAG_JOB_ID, job_id) == job_id]
        return sorted(mine, key=lambda j: j.get("createdAt", 0))

    # Status, logs, cancel

    def describe(self, handle: JobHandle) -> dict[str, Any]:
        """Return the job's DescribeJobs entry (the hook retries throttling)."""
        return self.hook.get_job_description(handle.external_id)

    def status(self, handle: JobHandle) -> JobStatus:
        """Map the Batch status onto JobState; a failure carries statusReason, exit code and the attempts."""
        job = self.describe(handle)
        state = _STATES.get(job["status"], JobState.PENDING)
        if state != JobState.FAILED:
            return JobStatus(state, job["status"])
        return JobStatus(state, failure_reason(job), exit_code(job))

    def log_tail(self, handle: JobHandle, lines: int = 40) -> list[str]:
        """Return the last ``lines`` lines of the job's newest log stream ([] if it has none)."""
        info = self._log_info(handle)
        if info is None:
            return []
        from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

        client = AwsLogsHook(aws_conn_id=self.settings.aws_conn_id, region_name=info["awslogs_region"]).conn
        try:
            events = client.get_log_events(logGroupName=info["awslogs_group"],
                                           logStreamName=info["awslogs_stream_name"], limit=lines,
                                           startFromHead=False)["events"]
        except client.exceptions.ResourceNotFoundException:
            return []
        return [e["message"] for e in events]

    def cancel(self, handle: JobHandle, reason: str) -> None:
        """Terminate the job (a queued job is cancelled, a running one gets SIGTERM, then SIGKILL)."""
        log.warning("Terminating Batch job %s: %s", handle.external_id, reason)
        retry_transient(lambda: self.hook.terminate_job(handle.external_id, reason[:1024]), what="TerminateJob")

    def links(self, handle: JobHandle) -> dict[str, dict[str, Any]]:
        """The job's console page, and its CloudWatch log stream once it has one."""
        from isaaclab_pipeline.links import IsaacLabBatchJobLink, IsaacLabJobLogLink

        partition = handle.details.get("partition", "aws")
        out: dict[str, dict[str, Any]] = {IsaacLabBatchJobLink.key: {
            "region_name": handle.details.get("regionName"), "aws_partition": partition,
            "job_id": handle.external_id}}
        info = self._log_info(handle)
        if info:
            out[IsaacLabJobLogLink.key] = {"region_name": info["awslogs_region"], "aws_partition": partition, **info}
        return out

    def poller(self, handle: JobHandle) -> PollerSpec:
        """The trigger polls DescribeJobs on the deployment's connection."""
        return PollerSpec("batch", {"job_id": handle.external_id, "aws_conn_id": self.settings.aws_conn_id,
                                    "region_name": handle.details.get("regionName")})

    # Helpers

    def _log_info(self, handle: JobHandle) -> dict[str, str] | None:
        try:
            infos = self.hook.get_job_all_awslogs_info(handle.external_id)
        except Exception as exc:  # the provider raises for job kinds or states without a log stream yet
            log.debug("no log stream for %s yet: %s", handle.external_id, exc)
            return None
        return infos[-1] if infos else None  # the newest attempt's stream is listed last

    def _handle(self, spec: JobSpec, batch_job_id: str, job_name: str) -> JobHandle:
        details = {"jobName": job_name, "jobQueue": self.job_queue(spec.num_nodes), "numNodes": spec.num_nodes,
                   "regionName": self.hook.conn_region_name, "partition": self.hook.conn_partition}
        return JobHandle(self.name, spec.job_id, batch_job_id, details, spec.staging_uri)

    def job_queue(self, num_nodes: int) -> str:
        """The queue for a job of ``num_nodes`` nodes: multi-node jobs may have their own (on-demand) queue."""
        if num_nodes > 1 and self.settings.batch_multinode_job_queue:
            return self.settings.batch_multinode_job_queue
        return self.settings.batch_job_queue

    def _stage_spec(self, spec: JobSpec) -> str:
        uri = storage.join(spec.staging_uri, staging_layout.SPEC)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / staging_layout.SPEC
            path.write_text(spec.to_json())
            storage.for_uri(uri, self.settings.aws_conn_id).upload(path, uri)
        return uri

    def _check_settings(self, spec: JobSpec) -> None:
        s = self.settings
        missing = [f"isaaclab_{name}" for name, value in (
            ("batch_job_queue", s.batch_job_queue),
            ("batch_job_definition" if spec.num_nodes == 1 else "batch_multinode_job_definition",
             s.batch_job_definition if spec.num_nodes == 1 else s.batch_multinode_job_definition),
        ) if not value]
        if missing:
            raise ValueError(f"the batch backend needs the Airflow Variable(s) {', '.join(missing)}; see "
                             "docs/aws-batch.md (the CloudFormation stack's outputs name them)")
        if not storage.is_s3(spec.staging_uri):
            raise ValueError(f"the batch backend needs an s3:// staging location, got {spec.staging_uri!r}; set "
                             "the Variable isaaclab_staging_uri to s3://<bucket>/<prefix>")


class BatchJobPoller:
    """The trigger's view of a Batch job: DescribeJobs through the provider's ``BatchClientHook``.

    The job's log stays in CloudWatch (the wait step's log link); the trigger does not copy it.

    :param job_id: the Batch job id.
    :param aws_conn_id: the AWS connection.
    :param region_name: the AWS region (None: the connection's).
    """

    def __init__(self, job_id: str, aws_conn_id: str | None = "aws_default", region_name: str | None = None) -> None:
        self.job_id = job_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    @cached_property
    def hook(self) -> Any:
        """The provider's BatchClientHook; few status retries, since the trigger retries throttling itself."""
        from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook

        return BatchClientHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, status_retries=3)

    def poll(self) -> Poll:
        """The job's Batch status; a failure carries its reason, exit code and attempts."""
        job = self.hook.get_job_description(self.job_id)
        state = _STATES.get(job["status"], JobState.PENDING)
        reason = failure_reason(job) if state == JobState.FAILED else job.get("statusReason", "")
        return Poll(state, job["status"], reason or "", len(job.get("attempts") or []) or 1)

    def read_log(self, offset: int) -> tuple[list[str], int]:
        """Nothing: the log is in CloudWatch."""
        return [], offset

    def terminate(self, reason: str) -> None:
        """TerminateJob (a queued job is cancelled, a running one gets SIGTERM, then SIGKILL)."""
        self.hook.terminate_job(self.job_id, reason[:1024])


def exit_code(job: dict[str, Any]) -> int | None:
    """The exit code of a described job (a container job's, or the newest attempt's)."""
    code = (job.get("container") or {}).get("exitCode")
    if code is None and job.get("attempts"):
        code = (job["attempts"][-1].get("container") or {}).get("exitCode")
    return code


def failure_reason(job: dict[str, Any]) -> str:
    """One line: the job's statusReason, the container's reason, the exit code and every attempt's fate."""
    parts = [job.get("statusReason") or "no statusReason"]
    reason = (job.get("container") or {}).get("reason")
    if reason:
        parts.append(f"container: {reason}")
    code = exit_code(job)
    if code is not None:
        parts.append(f"exit code {code}")
    attempts = job.get("attempts") or []
    if len(attempts) > 1:
        parts.append("attempts: " + "; ".join(
            f"{i}: {a.get('statusReason') or '?'} (exit {(a.get('container') or {}).get('exitCode', '-')})"
            for i, a in enumerate(attempts, 1)))
    return ", ".join(parts)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# Accounting (``backends.accounting``): the job's attempts as DescribeJobs has them; ``cost`` prices them

def _describer(handle: JobHandle, aws_conn_id: str | None) -> Any:
    from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook

    return BatchClientHook(aws_conn_id=aws_conn_id, region_name=handle.details.get("regionName"))


def queue_waits(handle: JobHandle, attempts: list[Mapping[str, Any]], describe: Any = None,
                aws_conn_id: str | None = "aws_default") -> list[float | None]:
    """Each attempt's wait: createdAt (or the previous attempt's stop) → the attempt's start.

    :param describe: Batch job id → DescribeJobs entry (default: the provider's BatchClientHook).
    """
    job = (describe or _describer(handle, aws_conn_id or "aws_default").get_job_description)(handle.external_id)
    starts = [(x.get("startedAt"), x.get("stoppedAt")) for x in job.get("attempts") or []]
    if job.get("startedAt") and len(starts) < len(attempts):  # the running (last) attempt is not listed yet
        starts.append((job.get("startedAt"), job.get("stoppedAt")))
    waits: list[float | None] = []
    previous_ms = job.get("createdAt")
    for i in range(len(attempts)):
        start_ms = starts[i][0] if i < len(starts) else None
        waits.append(None if not previous_ms or not start_ms else round(max(0.0, (start_ms - previous_ms) / 1000), 3))
        previous_ms = starts[i][1] if i < len(starts) else None
    return waits


def job_cost(handle: JobHandle, aws_conn_id: str | None = "aws_default", describe: Any = None, facts: Any = None,
             now: float | None = None) -> dict[str, Any]:
    """GPU-seconds and the estimated price of the job's attempts (``cost.batch_cost``).

    :param describe: Batch job id → DescribeJobs entry (default: the provider's BatchClientHook).
    :param facts: ``cost.InstanceFacts`` (default: ECS and Batch clients on ``aws_conn_id``).
    """
    from isaaclab_pipeline import cost
    from isaaclab_pipeline.settings import get_setting

    if describe is None or facts is None:
        from airflow.providers.amazon.aws.hooks.ecs import EcsHook

        hook = _describer(handle, aws_conn_id)
        describe = describe or hook.get_job_description
        region = handle.details.get("regionName")
        facts = facts or cost.InstanceFacts(EcsHook(aws_conn_id=aws_conn_id, region_name=region).conn, hook.client)
    return cost.batch_cost(describe(handle.external_id), cost.load_price_table(), facts=facts,
                           fallback_instance_type=get_setting("cost_instance_type") or None, now=now)
