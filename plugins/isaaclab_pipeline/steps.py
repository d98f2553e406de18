"""The DAG's steps: one function per task id, named as the task (``dags/isaac_lab_training.py`` only wires them).

``submit_job`` and ``wait_for_job`` are operators (``operators.py``); every other task is a function here. Each takes
what its task receives (XCom values, the run's context) and returns the task's XCom value, so a step can be read,
and called, without a DAG. The two side effects that are not a step's own work each have one home here:
``_record_cost`` (the job's cost.json, written by ``convert_tensorboard_logs``) and ``_mlflow`` (the only call into
``tracking`` — runs and the policy registry; a deployment without the Variable ``isaaclab_mlflow_tracking_uri`` never
imports it).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from isaaclab_pipeline.settings import PipelineSettings

log = logging.getLogger(__name__)

# the publish step copies these JobSpec fields into training-config.json's "resolved"
_RESOLVED_FROM_SPEC = ("envPackageUri", "checkpointUri", "resumeCheckpointUri", "seed", "rlLibrary")
# the trial facts publish writes beside a sweep trial's outputs
_TRIAL_FACTS = ("sweepId", "trialId", "setting", "settingLabel", "seed")


def _mlflow(settings: PipelineSettings, call: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``tracking.<module>.<function>(tracking_uri, ...)`` when the deployment tracks; None otherwise.

    :param call: ``"log_trial"`` (``tracking.mlflow``) or ``"registry.record"`` (``tracking.registry``).
    """
    if not settings.mlflow_tracking_uri:
        return None
    module, _, function = call.rpartition(".")
    tracking = importlib.import_module(f"isaaclab_pipeline.tracking.{module or 'mlflow'}")
    return getattr(tracking, function)(settings.mlflow_tracking_uri, *args, **kwargs)


def _record_cost(job_handle: Mapping[str, Any] | None, staging_uri: str, aws_conn_id: str | None) -> None:
    """The job's cost.json in staging (published beside the metrics); never fails the step."""
    from isaaclab_pipeline.cost import record_cost

    record_cost(job_handle, staging_uri, aws_conn_id)


def validate_config(conf: Mapping[str, Any] | None, dag_id: str, run_id: str,
                    settings: PipelineSettings | None = None) -> dict[str, Any]:
    """Validate and normalize the conf; give the run its job UUID (a sweep's UUID).

    :raises AirflowFailException: the conf is invalid (every problem listed; not retried: bad input stays bad).
    """
    from isaaclab_pipeline.compat import AirflowFailException
    from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, job_uuid
    from isaaclab_pipeline.form import validate_submission

    settings = settings or PipelineSettings.load()
    try:  # the trigger form's flat fields or the nested conf (REST, VAMS), bare or wrapped
        normalized = apply_deployment(validate_submission(dict(conf or {})),
                                      default_output_uri=settings.default_output_uri, max_nodes=settings.max_nodes,
                                      max_trials=settings.max_trials)
    except ConfigValidationError as exc:
        raise AirflowFailException(str(exc)) from exc  # fail without retries
    return {"jobId": job_uuid(dag_id, run_id), "conf": normalized}


def resolve_inputs(validated: Mapping[str, Any], run_id: str,
                   settings: PipelineSettings | None = None) -> list[dict[str, Any]]:
    """Resolve the env package and checkpoint; one JobSpec per trial (with the trial's facts). A sweep gets its
    MLflow parent run here, named in each trial."""
    from isaaclab_pipeline.resolve import build_trial_specs

    settings = settings or PipelineSettings.load()
    conf, job_id = validated["conf"], validated["jobId"]
    trials = build_trial_specs(conf, job_id, settings)
    if conf.get("sweep"):
        parent = _mlflow(settings, "start_sweep_run", settings.mlflow_experiment, job_id, conf, run_id)
        if parent:
            for item in trials:
                item["trial"]["mlflowParentRunId"] = parent
    return trials


def convert_tensorboard_logs(job_spec: Mapping[str, Any], job_handle: Mapping[str, Any] | None = None,
                             settings: PipelineSettings | None = None) -> dict[str, Any]:
    """Record the job's cost, then convert the run's TensorBoard events to metrics.csv, summary.json and
    reward_curve.png in staging; return the metrics summary."""
    from isaaclab_pipeline.staged_metrics import convert_staged_run

    aws_conn_id = (settings or PipelineSettings.load()).aws_conn_id
    _record_cost(job_handle, job_spec["stagingUri"], aws_conn_id)
    return convert_staged_run(job_spec["stagingUri"], aws_conn_id)


def publish_outputs(job_spec: Mapping[str, Any], trial: Mapping[str, Any], sent: Mapping[str, Any] | None,
                    run_id: str, settings: PipelineSettings | None = None) -> dict[str, Any]:
    """Publish under {outputS3Path}/{uuid}/ (a trial: .../{uuid}/trials/{trial id}/) with manifest.json last; log
    the published run to MLflow when the deployment tracks.

    :param sent: the DAG run's conf as sent (training-config.json's ``confAsSent``).
    """
    from isaaclab_pipeline.publish import publish_outputs as publish

    settings = settings or PipelineSettings.load()
    conf = trial["conf"]
    facts = None if trial["trialId"] is None else {k: trial[k] for k in (*_TRIAL_FACTS, "round") if k in trial}
    resolved = {**(trial.get("resolved") or {}), **{k: job_spec.get(k) for k in _RESOLVED_FROM_SPEC}}
    result = publish(job_spec["stagingUri"], conf["outputS3Path"], conf, trial["jobId"], settings.aws_conn_id,
                     out_uri=trial["outputUri"], trial=facts, resolved=resolved, sent=sent)
    run = _mlflow(settings, "log_trial", settings.mlflow_experiment, job_id=trial["jobId"], conf=conf,
                  out_uri=result["outputUri"], dag_run_id=run_id, trial=trial,
                  parent_run_id=trial.get("mlflowParentRunId"), aws_conn_id=settings.aws_conn_id)
    if run:
        result["mlflowRunId"] = run  # then the policy registry: a training registers, an evaluation scores a version
        result.update(_mlflow(settings, "registry.record", run, conf=conf, job_id=trial["jobId"],
                              out_uri=result["outputUri"], resolved=resolved, aws_conn_id=settings.aws_conn_id))
    return {**result, "jobId": trial["jobId"], "trialId": trial["trialId"]}


def _decide(validated: Mapping[str, Any] | None, previous: list[Mapping[str, Any]] | None, round_no: int,
            settings: PipelineSettings | None) -> list[dict[str, Any]]:
    """Round ``round_no``'s trials of a halving sweep: the previous round's survivors, resumed (halving.decide)."""
    from isaaclab_pipeline import halving

    if not validated or not previous or halving.search(validated["conf"]) is None:
        return []  # no halving (a grid sweep, one run), or no previous round to go on from
    settings = settings or PipelineSettings.load()
    return halving.decide(validated["conf"], validated["jobId"], round_no, previous, settings)


def decide_round_2(validated: Mapping[str, Any] | None, trials: list[Mapping[str, Any]] | None,
                   settings: PipelineSettings | None = None) -> list[dict[str, Any]]:
    """After round 1 of a halving sweep: rank its trials, return the survivors' round-2 JobSpecs (resumes); [] for
    a grid sweep, one run or a conf without round 2 (the mapped round-2 group then runs nothing)."""
    return _decide(validated, trials, 2, settings)


def decide_round_3(validated: Mapping[str, Any] | None, trials: list[Mapping[str, Any]] | None,
                   settings: PipelineSettings | None = None) -> list[dict[str, Any]]:
    """After round 2: as :func:`decide_round_2`, from round 2's trials ([] unless the conf has 3 rounds)."""
    return _decide(validated, trials, 3, settings)


# the mapped group of each round (its task ids' prefix) and the decision task that made its trials
ROUNDS = (("", "resolve_inputs"), ("trial_round_2.", "decide_round_2"), ("trial_round_3.", "decide_round_3"))


def _all_rounds(trials: list[Mapping[str, Any]], ti: Any, states: Mapping[str, Any] | None
                ) -> tuple[list[Mapping[str, Any]], dict[str, Any] | None, list[Any]]:
    """Every round's trials in one list (round 1 first), their task states keyed by the list's index as
    ``<step>_<index>`` (report.trial_states' form) and their publish_outputs XComs."""
    from isaaclab_pipeline.report import STEPS

    items, merged, published = list(trials), None if states is None else {}, []
    published += ti.xcom_pull(task_ids="publish_outputs", map_indexes=list(range(len(trials)))) or []
    if merged is not None:
        merged.update({k: v for k, v in states.items() if "." not in k})
    for prefix, decider in ROUNDS[1:]:
        more = ti.xcom_pull(task_ids=decider) or []
        if not more:
            continue
        offset = len(items)
        items += more
        published += ti.xcom_pull(task_ids=f"{prefix}publish_outputs", map_indexes=list(range(len(more)))) or []
        if merged is not None:
            for name, state in states.items():
                step, _, index = name.removeprefix(prefix).rpartition("_")
                if name.startswith(prefix) and step in STEPS and index.isdigit():
                    merged[f"{step}_{offset + int(index)}"] = state
    return items, merged, published


def compare_trials(validated: Mapping[str, Any], trials: list[Mapping[str, Any]], ti: Any,
                   settings: PipelineSettings | None = None) -> dict[str, Any]:
    """A sweep's report under {outputS3Path}/{uuid}/: trials.csv, summary.json, comparison.png; the sweep's MLflow
    run finished with it.

    :param ti: the running task instance (the trials' task states and published XComs are read through it).
    :raises AirflowSkipException: not a sweep.
    """
    from isaaclab_pipeline.compat import AirflowSkipException
    from isaaclab_pipeline.report import STEPS, write_report

    if not validated["conf"].get("sweep"):
        raise AirflowSkipException("not a sweep: one run, nothing to compare")
    settings = settings or PipelineSettings.load()
    task_ids = [f"{prefix}{step}" for prefix, _ in ROUNDS for step in STEPS]
    try:
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=task_ids)[ti.run_id]
    except Exception as exc:  # the report still comes, each trial judged by its published manifest
        ti.log.warning("could not read the trials' task states (%s); judging trials by their outputs", exc)
        states = None
    trials, states, published = _all_rounds(trials, ti, states)  # a halving sweep's later rounds too
    runs = {p["jobId"]: p["mlflowRunId"] for p in published if p and p.get("mlflowRunId")}
    report = write_report(validated["conf"], validated["jobId"], trials, states, settings.aws_conn_id, runs)
    parent = trials[0]["trial"].get("mlflowParentRunId") if trials else None
    if parent:
        _mlflow(settings, "finish_sweep_run", parent, report, report["reportUri"], settings.aws_conn_id)
    summary = report["summary"]
    return {"reportUri": report["reportUri"], "files": report["files"], "best": summary["best"],
            "succeeded": summary["succeeded"], "trials": summary["trials"]}
