"""
### isaac-lab-training

Trains or evaluates an Isaac Lab RL policy from a JSON conf, in five steps:

1. **validate_config** – check the conf against `include/schemas/training-config.schema.json` (overrides and sweep
   included); every problem is listed and the step is not retried (bad input stays bad).
2. **resolve_inputs** – find the env package and checkpoint in the asset; build one JobSpec per trial (a conf
   without `sweep` is one trial).
3. **submit_job** → **wait_for_job** – run the task runner on the compute backend (local subprocess by default,
   AWS Batch in production); the wait defers to the triggerer on both, and logs progress (iteration, mean
   reward) while it trains.
4. **convert_tensorboard_logs** – every scalar of every event file → `metrics.csv`, `summary.json`, a plot.
5. **publish_outputs** – lay everything out under `{outputS3Path}/{uuid}/` with `manifest.json` written last (a
   sweep's trial: `{outputS3Path}/{uuid}/trials/{trial id}/`); logged to MLflow when the deployment tracks.

Steps 3–5 are mapped per trial (one map index each: they retry and fail on their own, a failed trial never stops
the others). A sweep ends with **compare_trials** (a teardown: it runs whatever the trials did, and the run's
state stays the trials'): `trials.csv`, `summary.json`, `comparison.png` under `{outputS3Path}/{uuid}/`.

Trigger with a conf such as `examples/confs/custom_cartpole_train.json`; see docs/configuration.md and
docs/experiments.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task, task_group
from isaaclab_pipeline.compat import check_airflow_version
from isaaclab_pipeline.config import DAG_ID
from isaaclab_pipeline.form import dag_params
from isaaclab_pipeline.operators import SubmitIsaacLabJobOperator, WaitForIsaacLabJobOperator
from isaaclab_pipeline.vams import callbacks as vams

# an Airflow the pipeline is not tested on fails here, as this file's import error naming the version
check_airflow_version()


@dag(
    dag_id=DAG_ID,
    schedule=None,
    catchup=False,
    is_paused_upon_creation=False,  # MWAA creates DAGs paused; triggered runs would stay queued
    doc_md=__doc__,
    params=dag_params(),
    tags=["isaac-lab", "training", "gpu"],
    default_args={"owner": "robotics", "retries": 2, "retry_delay": timedelta(seconds=30),
                  "on_failure_callback": vams.on_task_failure},
    max_active_tasks=4,
    # runs started by VAMS report back to its Step Functions task token (no-ops otherwise); see docs/vams.md
    on_success_callback=vams.on_dag_success,
    on_failure_callback=vams.on_dag_failure,
)
def isaac_lab_training() -> None:
    """The five steps, the job steps mapped per trial; each is a small call into plugins/isaaclab_pipeline."""

    # dict-returning tasks push one XCom (return_value): Airflow 3.0 fails pushing a None-valued key of a dict
    @task(retries=0, multiple_outputs=False)
    def validate_config() -> dict[str, Any]:
        """Validate and normalize the conf; give the run its job UUID (a sweep's UUID)."""
        from isaaclab_pipeline.compat import AirflowFailException
        from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, job_uuid
        from isaaclab_pipeline.form import normalize
        from isaaclab_pipeline.settings import PipelineSettings

        ctx = get_current_context()
        settings = PipelineSettings.load()
        try:  # the trigger form's flat fields or the nested conf (REST, VAMS), bare or wrapped
            conf = apply_deployment(normalize(ctx["dag_run"].conf or {}),
                                    default_output_uri=settings.default_output_uri, max_nodes=settings.max_nodes,
                                    max_trials=settings.max_trials)
        except ConfigValidationError as exc:
            raise AirflowFailException(str(exc)) from exc  # fail without retries
        return {"jobId": job_uuid(ctx["dag"].dag_id, ctx["run_id"]), "conf": conf}

    @task
    def resolve_inputs(validated: dict[str, Any]) -> list[dict[str, Any]]:
        """Resolve the env package and checkpoint; return one JobSpec per trial (with the trial's facts)."""
        from isaaclab_pipeline.resolve import build_trial_specs
        from isaaclab_pipeline.settings import PipelineSettings

        settings = PipelineSettings.load()
        trials = build_trial_specs(validated["conf"], validated["jobId"], settings)
        if settings.mlflow_tracking_uri and validated["conf"].get("sweep"):
            from isaaclab_pipeline.tracking.mlflow import start_sweep_run

            parent = start_sweep_run(settings.mlflow_tracking_uri, settings.mlflow_experiment, validated["jobId"],
                                     validated["conf"], get_current_context()["run_id"])
            for item in trials:
                item["trial"]["mlflowParentRunId"] = parent
        return trials

    @task(multiple_outputs=False)
    def convert_tensorboard_logs(job_spec: dict[str, Any], job_handle: dict[str, Any] | None = None) -> dict[str, Any]:
        """Convert the run's TensorBoard events to metrics.csv, summary.json and reward_curve.png; record the job's
        cost (cost.json, published beside them; never fails the step)."""
        from isaaclab_pipeline.convert import convert_staged_run
        from isaaclab_pipeline.cost import record_cost
        from isaaclab_pipeline.settings import PipelineSettings

        aws_conn_id = PipelineSettings.load().aws_conn_id
        record_cost(job_handle, job_spec["stagingUri"], aws_conn_id)
        return convert_staged_run(job_spec["stagingUri"], aws_conn_id)

    @task(multiple_outputs=False)
    def publish_outputs(job_spec: dict[str, Any], trial: dict[str, Any], _metrics: dict[str, Any]) -> dict:
        """Publish under {outputS3Path}/{uuid}/ (a trial: .../{uuid}/trials/{trial id}/) with manifest.json last."""
        from isaaclab_pipeline.publish import publish_outputs as publish
        from isaaclab_pipeline.settings import PipelineSettings

        settings = PipelineSettings.load()
        conf = trial["conf"]
        facts = None if trial["trialId"] is None else {
            k: trial[k] for k in ("sweepId", "trialId", "setting", "settingLabel", "seed")}
        resolved = {**(trial.get("resolved") or {}),
                    **{k: job_spec.get(k) for k in ("envPackageUri", "checkpointUri", "resumeCheckpointUri", "seed",
                                                    "rlLibrary")}}
        result = publish(job_spec["stagingUri"], conf["outputS3Path"], conf, trial["jobId"], settings.aws_conn_id,
                         out_uri=trial["outputUri"], trial=facts, resolved=resolved,
                         sent=get_current_context()["dag_run"].conf)
        if settings.mlflow_tracking_uri:
            from isaaclab_pipeline.tracking.mlflow import log_trial

            result["mlflowRunId"] = log_trial(
                settings.mlflow_tracking_uri, settings.mlflow_experiment, job_id=trial["jobId"], conf=conf,
                out_uri=result["outputUri"], dag_run_id=get_current_context()["run_id"], trial=trial,
                parent_run_id=trial.get("mlflowParentRunId"), aws_conn_id=settings.aws_conn_id)
        return {**result, "jobId": trial["jobId"], "trialId": trial["trialId"]}

    @task_group(group_id="trial", prefix_group_id=False)
    def run_trial(job_spec: dict[str, Any], trial: dict[str, Any]) -> Any:
        """One trial: submit, wait, convert, publish (mapped: one map index per trial)."""
        handle = SubmitIsaacLabJobOperator(task_id="submit_job", job_spec=job_spec,
                                           submitted_callback=vams.on_job_submitted,  # VAMS's abort can stop it
                                           max_active_tis_per_dagrun=1)  # one trial at a time counts free slots
        waited = WaitForIsaacLabJobOperator(
            task_id="wait_for_job",
            job_handle=handle.output,
            # a VAMS heartbeat (no-op for other runs); terminates the job when VAMS stopped waiting
            progress_callback=vams.on_job_progress,
            execution_timeout=timedelta(hours=24),
        )
        metrics = convert_tensorboard_logs(job_spec, handle.output)
        waited >> metrics
        return publish_outputs(job_spec, trial, metrics)

    @task(multiple_outputs=False)
    def compare_trials(validated: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
        """A sweep's report under {outputS3Path}/{uuid}/: trials.csv, summary.json, comparison.png."""
        from isaaclab_pipeline.compat import AirflowSkipException
        from isaaclab_pipeline.report import STEPS, write_report
        from isaaclab_pipeline.settings import PipelineSettings

        if not validated["conf"].get("sweep"):
            raise AirflowSkipException("not a sweep: one run, nothing to compare")
        ctx = get_current_context()
        ti, settings = ctx["ti"], PipelineSettings.load()
        try:
            states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id], task_ids=list(STEPS))[ti.run_id]
        except Exception as exc:  # the report still comes, each trial judged by its published manifest
            ti.log.warning("could not read the trials' task states (%s); judging trials by their outputs", exc)
            states = None
        published = ti.xcom_pull(task_ids="publish_outputs", map_indexes=list(range(len(trials)))) or []
        runs = {p["jobId"]: p["mlflowRunId"] for p in published if p and p.get("mlflowRunId")}
        report = write_report(validated["conf"], validated["jobId"], trials, states, settings.aws_conn_id, runs)
        parent = trials[0]["trial"].get("mlflowParentRunId") if trials else None
        if settings.mlflow_tracking_uri and parent:
            from isaaclab_pipeline.tracking.mlflow import finish_sweep_run

            finish_sweep_run(settings.mlflow_tracking_uri, parent, report, report["reportUri"], settings.aws_conn_id)
        return {k: report[k] for k in ("reportUri", "files")} | {"best": report["summary"]["best"],
                                                                 "succeeded": report["summary"]["succeeded"],
                                                                 "trials": report["summary"]["trials"]}

    validated = validate_config()
    trials = resolve_inputs(validated)
    published = run_trial.expand_kwargs(trials)
    # a teardown: runs once every trial is done, whatever it did; the run's state stays the trials' (a failed trial
    # fails the run), and it is skipped (upstream_failed) when validate or resolve failed
    published >> compare_trials(validated, trials).as_teardown(setups=trials)


isaac_lab_training()
