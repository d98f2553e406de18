"""VAMS's success output comes from what validate_config returned (its XCom), not from validating the conf again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from isaaclab_pipeline.vams.callbacks import success_output, validated_xcom


class _TI:
    def __init__(self, value: Any = None, error: Exception | None = None) -> None:
        self.value, self.error, self.asked = value, error, []

    def xcom_pull(self, task_ids: str) -> Any:
        self.asked.append(task_ids)
        if self.error:
            raise self.error
        return self.value


def test_the_callback_reads_validate_configs_xcom() -> None:
    ti = _TI({"jobId": "j", "conf": {"trainingConfig": {}}})
    assert validated_xcom({"ti": ti}) == {"jobId": "j", "conf": {"trainingConfig": {}}}
    assert ti.asked == ["validate_config"]
    assert validated_xcom({"ti": _TI(error=RuntimeError("no comms"))}) is None
    assert validated_xcom({}) is None


def test_the_output_uses_the_validated_conf_and_job_id(tmp_path: Path) -> None:
    """The validated conf carries what validation added (the default output, a drawn seed); the raw conf has none."""
    out = tmp_path / "deployment-default"
    (out / "job-from-xcom").mkdir(parents=True)
    (out / "job-from-xcom" / "summary.json").write_text(json.dumps(
        {"tags": {"Train/mean_reward": {"last": 4.9, "last_step": 149}}}))
    validated = {"jobId": "job-from-xcom", "conf": {
        "trainingConfig": {"mode": "train", "task": "Isaac-Cartpole-v0", "rlLibrary": "rsl_rl", "seed": 7},
        "outputS3Path": str(out)}}
    output = success_output({"trainingConfig": {}}, "isaac-lab-training", "run-1", validated)
    assert output["jobId"] == "job-from-xcom" and output["outputS3Path"] == f"{out}/job-from-xcom/"
    assert output["metrics"]["lastMeanReward"] == 4.9 and output["task"] == "Isaac-Cartpole-v0"


def test_a_sweeps_output_names_its_trials_best_setting_and_total_cost(tmp_path: Path) -> None:
    """A sweep's summary.json and cost.json are the report's (isaaclab_pipeline.report); VAMS gets the headline."""
    from isaaclab_pipeline import report

    sweep, out = "sweep-uuid", tmp_path / "outputs"
    items = []
    for seed, rewards in ((1, "1.0\n"), (2, "3.0\n")):
        trial_out, staging = out / sweep / "trials" / f"s0-seed{seed}", tmp_path / "staging" / str(seed)
        trial_out.mkdir(parents=True)
        staging.mkdir(parents=True)
        (trial_out / "metrics.csv").write_text(f"step,wall_time,Train/mean_reward\n0,1.0,{rewards}")
        (trial_out / "manifest.json").write_text("{}")
        (trial_out / "cost.json").write_text(json.dumps({"backend": "local", "wallSeconds": 60.0 * seed}))
        items.append({"job_spec": {"stagingUri": str(staging)},
                      "trial": {"trialId": f"s0-seed{seed}", "jobId": f"j{seed}", "seed": seed,
                                "settingLabel": "(base)", "outputUri": str(trial_out),
                                "conf": {"trainingConfig": {}}}})
    conf = {"trainingConfig": {"mode": "train", "task": "T", "rlLibrary": "rsl_rl"}, "outputS3Path": str(out),
            "sweep": {"seeds": [1, 2]}}
    report.write_report(conf, sweep, items, None, None)
    output = success_output(conf, "isaac-lab-training", "run-1", {"jobId": sweep, "conf": conf})
    assert output["metrics"] == {"trials": 2, "trialsSucceeded": 2, "bestSetting": "(base)",
                                 "bestFinalMeanReward": 2.0}
    assert output["cost"] == {"backend": "local", "trials": 2, "wallSeconds": 180.0, "live": False}
