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
