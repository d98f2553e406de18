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

A sweep with `sweep.search` (successive halving) trains in rounds: after round 1 (the `trial` group),
**decide_round_2** ranks the trials and returns the survivors, resumed from their own checkpoints, to the mapped
group `trial_round_2` (and **decide_round_3** to `trial_round_3`); for any other conf a decision returns [] and its
group runs nothing. Each round publishes under `{outputS3Path}/{uuid}/trials/{trial id}/round-{r}/`.

Trigger with a conf such as `examples/confs/custom_cartpole_train.json`; see docs/configuration.md and
docs/experiments.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import dag, get_current_context, task, task_group
from isaaclab_pipeline import steps
from isaaclab_pipeline.compat import check_airflow_version
from isaaclab_pipeline.config import DAG_ID
from isaaclab_pipeline.form import dag_params
from isaaclab_pipeline.operators import SubmitIsaacLabJobOperator, WaitForIsaacLabJobOperator
from isaaclab_pipeline.vams import callbacks as vams

# an Airflow the pipeline is not tested on fails here, as this file's import error naming the version
check_airflow_version()


# a sweep's own tasks: successive halving's decisions and the comparison report (wired in the DAG below)
@task(multiple_outputs=False)
def compare_trials(validated: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """A sweep's report under {outputS3Path}/{uuid}/: trials.csv, summary.json, comparison.png."""
    return steps.compare_trials(validated, trials, get_current_context()["ti"])


@task(multiple_outputs=False)
def decide_round_2(validated: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Halving: rank round 1's trials, return the survivors' resumed JobSpecs ([] for any other conf)."""
    return steps.decide_round_2(validated, trials)


@task(multiple_outputs=False)
def decide_round_3(validated: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Halving with 3 rounds: rank round 2's trials, return the survivors' JobSpecs ([] otherwise)."""
    return steps.decide_round_3(validated, trials)


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
    """The steps wired together; each task is one call into isaaclab_pipeline.steps (the job steps are operators)."""

    # dict-returning tasks push one XCom (return_value): Airflow 3.0 fails pushing a None-valued key of a dict
    @task(retries=0, multiple_outputs=False)
    def validate_config() -> dict[str, Any]:
        """Validate and normalize the conf; give the run its job UUID (a sweep's UUID)."""
        ctx = get_current_context()
        return steps.validate_config(ctx["dag_run"].conf, ctx["dag"].dag_id, ctx["run_id"])

    @task
    def resolve_inputs(validated: dict[str, Any]) -> list[dict[str, Any]]:
        """Resolve the env package and checkpoint; return one JobSpec per trial (with the trial's facts)."""
        return steps.resolve_inputs(validated, get_current_context()["run_id"])

    @task(multiple_outputs=False)
    def convert_tensorboard_logs(job_spec: dict[str, Any], job_handle: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record the job's cost; convert its TensorBoard events to metrics.csv, summary.json, reward_curve.png."""
        return steps.convert_tensorboard_logs(job_spec, job_handle)

    @task(multiple_outputs=False)
    def publish_outputs(job_spec: dict[str, Any], trial: dict[str, Any], _metrics: dict[str, Any]) -> dict:
        """Publish under {outputS3Path}/{uuid}/ (a trial: .../{uuid}/trials/{trial id}/) with manifest.json last."""
        ctx = get_current_context()
        return steps.publish_outputs(job_spec, trial, ctx["dag_run"].conf, ctx["run_id"])

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

    validated = validate_config()
    trials = resolve_inputs(validated)
    published = task_group(group_id="trial", prefix_group_id=False)(run_trial).expand_kwargs(trials)
    # successive halving's later rounds, wired to the most rounds (Airflow cannot loop); a decision is a teardown of
    # its round (it runs whatever the round's trials did, and leaves the run's state to them) and returns [] when
    # the conf runs no such round: its mapped group then runs nothing
    round_2 = decide_round_2(validated, trials).as_teardown(setups=trials)
    published >> round_2
    published_2 = task_group(group_id="trial_round_2")(run_trial).expand_kwargs(round_2)
    round_3 = decide_round_3(validated, round_2).as_teardown(setups=trials)
    published_2 >> round_3
    published_3 = task_group(group_id="trial_round_3")(run_trial).expand_kwargs(round_3)
    # a teardown: runs once every trial of every round is done, whatever it did; the run's state stays the trials'
    # (a failed trial fails the run), and it is skipped (upstream_failed) when validate or resolve failed
    [published, published_2, published_3] >> compare_trials(validated, trials).as_teardown(setups=trials)


isaac_lab_training()
