"""Callbacks that report a VAMS-triggered run back to Step Functions: success once, failure exactly once, heartbeats.

A run is VAMS's when its conf has ``vams.callback: true``; its task token waits in SSM (``token_store``), keyed
by the run id, so it is in no conf, XCom, template or log. Every other run makes these callbacks no-ops.

- ``on_task_failure`` (every task's ``on_failure_callback``, on the worker): the step that failed and why;
- ``on_dag_failure`` (the DAG's, in the dag processor): a backstop for failures no task reported (a killed
  worker, a run timeout); the claim in ``token_store`` makes sure VAMS hears one failure only;
- ``on_dag_success``: the preview, asset metadata and result under VAMS's output prefixes (``asset_outputs``), then
  ``send_task_success`` with the output location, job UUID and headline metrics;
- ``on_job_progress``: called by the wait step on progress, also while the job waits in the Batch queue (the
  trigger reports ``{"state": "queued"}`` then); a heartbeat at most every ``isaaclab_vams_heartbeat_minutes``
  (default 5). When Step Functions answers the heartbeat ``TaskTimedOut`` (or no longer knows the token), VAMS
  stopped waiting (the execution was aborted or timed out): the token is dropped, so nothing reports to it again,
  and the wait step terminates the job and fails the run with :data:`STOPPED_WAITING`;
- ``on_job_submitted``: called by the submit step; registers an AWS Batch job with VAMS's orchestration bus
  (``systemConfig.orchestration*`` of the manifest), so VAMS's own abort terminates it too.

Deployment settings (Airflow Variables): ``isaaclab_vams_token_prefix`` (default ``/isaac-lab-training/vams``),
``isaaclab_vams_heartbeat_minutes``, and ``isaaclab_aws_conn_id``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from isaaclab_pipeline.backends.base import JobAbandonedError, JobHandle
from isaaclab_pipeline.readers import headline_metrics, read_json
from isaaclab_pipeline.settings import get_setting
from isaaclab_pipeline.vams.token_store import DEFAULT_PREFIX, TokenStore

log = logging.getLogger(__name__)

CAUSE_LIMIT = 256  # Step Functions' limit on a failure cause
DEAD_TOKEN_ERRORS = ("TaskTimedOut", "TaskDoesNotExist", "InvalidToken")
STOPPED_WAITING = "VAMS stopped waiting (execution aborted or timed out)"
REGISTER_DETAIL_TYPE = "pipeline.execution.register"  # VAMS: handlers/workflows/sfn/registerPipelineExecution.py
_last_heartbeat: dict[str, float] = {}  # run id -> monotonic time of the last heartbeat from this process


def clip(text: str, limit: int = CAUSE_LIMIT) -> str:
    """Fit ``text`` on one line of at most ``limit`` characters, marking a cut with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_conf(context: Mapping[str, Any]) -> dict[str, Any]:
    """Return the run's conf, unwrapped from the seed's ``parameters`` wrapper."""
    dag_run = context.get("dag_run")
    conf = dict(getattr(dag_run, "conf", None) or {})
    inner = conf.get("parameters")
    return dict(inner) if isinstance(inner, Mapping) else conf


def is_vams_run(conf: Mapping[str, Any]) -> bool:
    """True when VAMS triggered the run and waits for a callback."""
    vams = conf.get("vams")
    return isinstance(vams, Mapping) and vams.get("callback") is True


def _run_id(context: Mapping[str, Any]) -> str:
    dag_run = context.get("dag_run")
    return str(context.get("run_id") or getattr(dag_run, "run_id", ""))


def _clients() -> tuple[Any, TokenStore]:
    """Step Functions client and token store, through the amazon provider's hooks (the deployment's connection)."""
    from airflow.providers.amazon.aws.hooks.ssm import SsmHook
    from airflow.providers.amazon.aws.hooks.step_function import StepFunctionHook

    conn_id = get_setting("aws_conn_id", "aws_default") or None
    prefix = get_setting("vams_token_prefix", DEFAULT_PREFIX) or DEFAULT_PREFIX
    return StepFunctionHook(aws_conn_id=conn_id).conn, TokenStore(SsmHook(aws_conn_id=conn_id).conn, prefix)


def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def _scrubbed(exc: Exception, token: str) -> RuntimeError:
    """The exception as a new one whose text cannot carry the token (botocore may quote request values)."""
    return RuntimeError(f"{type(exc).__name__}: {str(exc).replace(token, '<task token>')}")


def _report(run_id: str, outcome: str, send: Callable[[Any, str], None]) -> bool:
    """Send the run's final report through the claim protocol; True if this call sent it."""
    sfn, store = _clients()
    if not store.claim(run_id, outcome):
        log.info("VAMS: run %s was already reported; not sending %s", run_id, outcome)
        return False
    try:
        token = store.get(run_id)
    except Exception:
        store.release(run_id)
        raise
    if token is None:
        store.release(run_id)
        log.info("VAMS: run %s has no task token left (reported before); not sending %s", run_id, outcome)
        return False
    try:
        send(sfn, token)
    except Exception as exc:
        if _error_code(exc) in DEAD_TOKEN_ERRORS:  # VAMS gave up on the run (timeout); nothing left to tell
            log.warning("VAMS: Step Functions refused the %s of run %s: %s", outcome, run_id, _error_code(exc))
            store.delete(run_id)
            store.release(run_id)
            return False
        store.release(run_id)  # a later callback may try again
        raise _scrubbed(exc, token) from None
    store.delete(run_id)
    store.release(run_id)
    log.info("VAMS: sent %s for run %s", outcome, run_id)
    return True


def report_failure(run_id: str, step: str, detail: str) -> bool:
    """Send ``send_task_failure`` once for the run, with a cause (≤ 256 chars) naming the failed step.

    :param run_id: the DAG run id (the token's key).
    :param step: the task id that failed.
    :param detail: why, e.g. the exception's message.
    :return: True if this call sent the failure.
    """
    error = clip(f"IsaacLabTraining.{step}Failed")
    cause = clip(f"isaac-lab-training step {step} failed: {detail}")

    def send(sfn: Any, token: str) -> None:
        sfn.send_task_failure(taskToken=token, error=error, cause=cause.replace(token, "<task token>"))

    return _report(run_id, "failure", send)


def report_success(run_id: str, output: Mapping[str, Any]) -> bool:
    """Send ``send_task_success`` once for the run with ``output`` as its JSON.

    :return: True if this call sent it.
    """
    body = json.dumps(dict(output), sort_keys=True)
    return _report(run_id, "success", lambda sfn, token: sfn.send_task_success(taskToken=token, output=body))


def success_output(conf: Mapping[str, Any], dag_id: str, run_id: str,
                   validated: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The small JSON VAMS receives on success: status, output location, job UUID, headline metrics and cost.

    :param conf: the run's conf (raw, either shape).
    :param validated: what ``validate_config`` returned (its XCom: ``{"jobId", "conf"}``), which the DAG callback
        reads; without it (a callback context that cannot reach XCom) the conf is normalized here the same way.
    """
    from isaaclab_pipeline import cost, storage
    from isaaclab_pipeline.config import apply_deployment, job_uuid
    from isaaclab_pipeline.form import validate_submission
    from isaaclab_pipeline.settings import PipelineSettings

    if validated and isinstance(validated.get("conf"), Mapping):
        normalized, job_id = dict(validated["conf"]), str(validated.get("jobId") or job_uuid(dag_id, run_id))
    else:
        settings = PipelineSettings.load()
        normalized = apply_deployment(validate_submission(conf), default_output_uri=settings.default_output_uri,
                                      max_nodes=settings.max_nodes)
        job_id = job_uuid(dag_id, run_id)
    out_uri = storage.join(normalized["outputS3Path"], job_id)
    tc = normalized["trainingConfig"]
    output: dict[str, Any] = {"status": "SUCCEEDED", "dagId": dag_id, "dagRunId": run_id, "jobId": job_id,
                              "mode": tc["mode"], "task": tc["task"], "rlLibrary": tc["rlLibrary"],
                              "outputS3Path": out_uri + "/", "manifest": storage.join(out_uri, "manifest.json")}
    conn_id = get_setting("aws_conn_id", "aws_default") or "aws_default"
    store = storage.for_uri(out_uri, conn_id)
    raw = store.read_bytes(storage.join(out_uri, "summary.json"))
    if raw:
        output["metrics"] = headline_metrics(read_json(raw) or {})
        output["metrics"].update(run_size(output["metrics"], tc, store.read_bytes(
            storage.join(out_uri, "agent-params.txt"))))
    raw = store.read_bytes(storage.join(out_uri, cost.COST_NAME))  # GPU-seconds, estimated USD (Batch); wall time
    if raw:
        output["cost"] = cost.summary(json.loads(raw))
    return output


def run_size(metrics: Mapping[str, Any], tc: Mapping[str, Any], agent_params: bytes | None) -> dict[str, Any]:
    """Iterations and environment steps of a run, from its headline metrics and agent config.

    A training's iterations are its last logged iteration + 1; its env steps, iterations × numEnvs × the agent's
    steps per iteration (when the published agent-params.txt names them). An evaluation's env steps are its
    episodes × their mean length. A sweep has neither (its trials do).
    """
    from isaaclab_pipeline.readers import steps_per_iteration

    out: dict[str, Any] = {}
    if "returnMean" in metrics:
        if metrics.get("episodes") and metrics.get("episodeLengthMean") is not None:
            out["envSteps"] = int(round(metrics["episodes"] * metrics["episodeLengthMean"]))
        return out
    if metrics.get("lastStep") is None:
        return out
    out["iterations"] = int(metrics["lastStep"]) + 1
    per_iteration = steps_per_iteration(agent_params.decode(errors="replace")) if agent_params else None
    if per_iteration and tc.get("numEnvs"):
        out["envSteps"] = out["iterations"] * int(tc["numEnvs"]) * per_iteration
    return out


def _report_failed_step(context: Mapping[str, Any], detail: Callable[[], str]) -> None:
    """Report the context's task as the failed step; a callback must not hide the failure it reports, so even the
    detail is worked out inside the guard."""
    try:
        if not is_vams_run(run_conf(context)):
            return
        step = getattr(context.get("ti"), "task_id", None) or "unknown"
        report_failure(_run_id(context), step, detail())
    except Exception:
        log.exception("VAMS: could not report the failure of run %s", _run_id(context))


def on_task_failure(context: Mapping[str, Any]) -> None:
    """Task ``on_failure_callback``: tell VAMS which step failed and why (no-op for runs VAMS did not start)."""
    exc = context.get("exception")

    def detail() -> str:
        if exc is None:
            return "no error message"
        # the pipeline's own failures lead with the job's cause; their type name would only take cause space
        return str(exc) if type(exc).__name__ == "AirflowFailException" else f"{type(exc).__name__}: {exc}"

    _report_failed_step(context, detail)


def on_dag_failure(context: Mapping[str, Any]) -> None:
    """DAG ``on_failure_callback``: the backstop; sends a failure only if no task reported one."""
    _report_failed_step(context, lambda: f"the DAG run failed ({context.get('reason') or 'no reason given'})")


def on_dag_success(context: Mapping[str, Any]) -> None:
    """DAG ``on_success_callback``: ``send_task_success`` with the output location and headline metrics."""
    run_id = _run_id(context)
    try:
        conf = run_conf(context)
        if not is_vams_run(conf):
            return
        dag = context.get("dag")
        output = success_output(conf, getattr(dag, "dag_id", "isaac-lab-training"), run_id, validated_xcom(context))
        outputs = (conf.get("vams") or {}).get("outputs") or {}
        if outputs:
            from isaaclab_pipeline.vams.asset_outputs import write_asset_outputs

            conn_id = get_setting("aws_conn_id", "aws_default") or "aws_default"
            try:
                output["assetOutputs"] = write_asset_outputs(outputs, output, output["outputS3Path"], conn_id)
            except Exception as exc:  # VAMS would ingest the files without what it shows: say so, once
                log.exception("VAMS: writing the preview/metadata/result of run %s failed", run_id)
                report_failure(run_id, "publish_outputs", f"writing VAMS's preview, metadata or result failed: "
                                                          f"{type(exc).__name__}: {exc}")
                return
        report_success(run_id, output)
    except Exception:
        log.exception("VAMS: could not report the success of run %s", run_id)


def validated_xcom(context: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """What ``validate_config`` returned for this run, through the callback's task instance (None if unreachable)."""
    ti = context.get("ti")
    try:
        value = ti.xcom_pull(task_ids="validate_config") if ti is not None else None
    except Exception as exc:  # a context without XCom access: the caller normalizes the conf itself
        log.info("VAMS: validate_config's XCom not readable here (%s); normalizing the conf again", exc)
        return None
    return value if isinstance(value, Mapping) else None


def on_job_progress(context: Mapping[str, Any], progress: Mapping[str, Any] | None = None) -> bool:
    """Wait-step hook: ``send_task_heartbeat`` for a VAMS run, at most every N minutes per run; never raises.

    :param context: the wait task's context.
    :param progress: the job's latest progress (unused beyond logging; the heartbeat itself carries no data).
    :return: True if a heartbeat was sent.
    """
    run_id = _run_id(context)
    try:
        return _heartbeat(run_id, context, progress)
    except JobAbandonedError:
        raise
    except Exception as exc:  # progress reporting must never break the wait
        log.warning("VAMS: heartbeat of run %s failed: %s", run_id, exc)
        return False


def _heartbeat(run_id: str, context: Mapping[str, Any], progress: Mapping[str, Any] | None) -> bool:
    """The heartbeat itself; raises :class:`JobAbandonedError` when VAMS stopped waiting."""
    if not is_vams_run(run_conf(context)):
        return False
    every_s = 60 * float(get_setting("vams_heartbeat_minutes", "5") or 5)
    now = time.monotonic()
    if run_id in _last_heartbeat and now - _last_heartbeat[run_id] < every_s:
        return False
    sfn, store = _clients()
    token = store.get(run_id)
    if token is None:
        return False
    try:
        sfn.send_task_heartbeat(taskToken=token)
    except Exception as exc:
        if _error_code(exc) in DEAD_TOKEN_ERRORS:
            log.warning("VAMS: heartbeat of run %s refused (%s); VAMS stopped waiting: terminating the job",
                        run_id, _error_code(exc))
            store.delete(run_id)  # nobody waits on it: no later callback may report to it
            raise JobAbandonedError(STOPPED_WAITING) from None
        raise _scrubbed(exc, token) from None
    _last_heartbeat[run_id] = now
    it, state = (progress or {}).get("iteration"), (progress or {}).get("state")
    # a job still in the Batch queue has no progress of its own; the trigger reports {"state": "queued"}
    detail = f" (iteration {it})" if it is not None else f" ({state})" if state else ""
    log.info("VAMS: heartbeat sent for run %s%s", run_id, detail)
    return True


def on_job_submitted(context: Mapping[str, Any], handle: Mapping[str, Any]) -> bool:
    """Submit-step hook: register an AWS Batch job with VAMS's orchestration bus, as VAMS's own pipelines do
    (``PutEvents`` with detail-type ``pipeline.execution.register``), so aborting the execution in VAMS terminates
    the job even if Airflow is not told; never raises (registration is optional, the callback contract is not).

    :param handle: the submitted job's handle (``JobHandle.to_dict``).
    :return: True if the job was registered.
    """
    run_id = _run_id(context)
    try:
        conf = run_conf(context)
        vams = conf.get("vams") if isinstance(conf.get("vams"), Mapping) else {}
        orchestration = vams.get("orchestration") or {}
        if not is_vams_run(conf) or not orchestration.get("busArn") or not orchestration.get("eventPrefix"):
            return False
        job = JobHandle.from_dict(handle)
        if job.backend != "batch" or not vams.get("pipelineExecutionId"):
            return False  # a local job has no AWS resource VAMS could stop
        from airflow.providers.amazon.aws.hooks.eventbridge import EventBridgeHook

        detail = {"pipelineExecutionId": vams["pipelineExecutionId"],
                  "subExecution": {"resourceType": "batchJob", "jobId": job.external_id}}
        events = EventBridgeHook(aws_conn_id=get_setting("aws_conn_id", "aws_default") or None).conn
        answer = events.put_events(Entries=[{
            "EventBusName": orchestration["busArn"], "Source": orchestration["eventPrefix"],
            "DetailType": REGISTER_DETAIL_TYPE, "Detail": json.dumps(detail)}])
        if answer.get("FailedEntryCount"):
            log.warning("VAMS: registering job %s of run %s was refused: %s", job.external_id, run_id,
                        answer.get("Entries"))
            return False
        log.info("VAMS: Batch job %s registered with execution %s", job.external_id,
                 vams.get("workflowExecutionId") or "?")
        return True
    except Exception as exc:
        log.warning("VAMS: could not register the job of run %s with VAMS (%s: %s)", run_id, type(exc).__name__, exc)
        return False
