"""
### isaac-lab-training

Trains or evaluates an Isaac Lab RL policy from a JSON conf, in five steps:

1. **validate_config** – check the conf against `include/schemas/training-config.schema.json`; every problem is
   listed and the step is not retried (bad input stays bad).
2. **resolve_inputs** – find the env package and checkpoint in the asset; build the JobSpec.
3. **submit_job** → **wait_for_job** – run the task runner on the compute backend (local subprocess by default,
   AWS Batch in production); the wait defers to the triggerer on both, and logs progress (iteration, mean
   reward) while it trains.
4. **convert_tensorboard_logs** – every scalar of every event file → `metrics.csv`, `summary.json`, a plot.
5. **publish_outputs** – lay everything out under `{outputS3Path}/{uuid}/` with `manifest.json` written last.

Trigger with a conf such as `examples/confs/custom_cartpole_train.json`; see docs/configuration.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task
from isaaclab_pipeline.config import DAG_ID
from isaaclab_pipeline.form import dag_params
from isaaclab_pipeline.operators import SubmitIsaacLabJobOperator, WaitForIsaacLabJobOperator
from isaaclab_pipeline.vams import callbacks as vams


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
    """The five steps; each is a small call into plugins/isaaclab_pipeline."""

    @task(retries=0)
    def validate_config() -> dict[str, Any]:
        """Validate and normalize the conf; give the run its job UUID."""
        from airflow.sdk.exceptions import AirflowFailException
        from isaaclab_pipeline.config import ConfigValidationError, apply_deployment, job_uuid
        from isaaclab_pipeline.form import normalize
        from isaaclab_pipeline.settings import PipelineSettings

        ctx = get_current_context()
        settings = PipelineSettings.load()
        try:  # the trigger form's flat fields or the nested conf (REST, VAMS), bare or wrapped
            conf = apply_deployment(normalize(ctx["dag_run"].conf or {}),
                                    default_output_uri=settings.default_output_uri, max_nodes=settings.max_nodes)
        except ConfigValidationError as exc:
            raise AirflowFailException(str(exc)) from exc  # fail without retries
        return {"jobId": job_uuid(ctx["dag"].dag_id, ctx["run_id"]), "conf": conf}

    @task
    def resolve_inputs(validated: dict[str, Any]) -> dict[str, Any]:
        """Resolve the env package and checkpoint; return the JobSpec."""
        from isaaclab_pipeline.resolve import build_job_spec
        from isaaclab_pipeline.settings import PipelineSettings

        return build_job_spec(validated["conf"], validated["jobId"], PipelineSettings.load()).to_json_dict()

    @task
    def convert_tensorboard_logs(job_spec: dict[str, Any], job_handle: dict[str, Any] | None = None) -> dict[str, Any]:
        """Convert the run's TensorBoard events to metrics.csv, summary.json and reward_curve.png; record the job's
        cost (cost.json, published beside them; never fails the step)."""
        from isaaclab_pipeline.convert import convert_staged_run
        from isaaclab_pipeline.cost import record_cost
        from isaaclab_pipeline.settings import PipelineSettings

        aws_conn_id = PipelineSettings.load().aws_conn_id
        record_cost(job_handle, job_spec["stagingUri"], aws_conn_id)
        return convert_staged_run(job_spec["stagingUri"], aws_conn_id)

    @task
    def publish_outputs(validated: dict[str, Any], job_spec: dict[str, Any], _metrics: dict[str, Any]) -> dict:
        """Publish under {outputS3Path}/{uuid}/ with manifest.json last."""
        from isaaclab_pipeline.publish import publish_outputs as publish
        from isaaclab_pipeline.settings import PipelineSettings

        conf = validated["conf"]
        return publish(job_spec["stagingUri"], conf["outputS3Path"], conf, validated["jobId"],
                       PipelineSettings.load().aws_conn_id)

    validated = validate_config()
    job_spec = resolve_inputs(validated)
    handle = SubmitIsaacLabJobOperator(task_id="submit_job", job_spec=job_spec)
    waited = WaitForIsaacLabJobOperator(
        task_id="wait_for_job",
        job_handle=handle.output,
        progress_callback=vams.on_job_progress,  # a VAMS heartbeat; a no-op for runs VAMS did not start
        execution_timeout=timedelta(hours=24),
    )
    metrics = convert_tensorboard_logs(job_spec, handle.output)
    waited >> metrics
    publish_outputs(validated, job_spec, metrics)


isaac_lab_training()
