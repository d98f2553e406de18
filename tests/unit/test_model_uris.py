"""Registry URIs as checkpoint sources (model_uris.py) and trainingConfig.init: what validate_config and
resolve_inputs refuse before any GPU time. The resolution against a real MLflow server is
tests/journeys/test_registry.py."""

from __future__ import annotations

import pytest
from isaaclab_pipeline import model_uris
from isaaclab_pipeline.config import ConfigValidationError, validate_conf


def _conf(**training: object) -> dict:
    return {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", **training},
            "inputS3AssetFilePath": "file:///assets/custom_cartpole/", "outputS3Path": "file:///outputs"}


def test_registry_uris_are_recognized() -> None:
    for uri in ("models:/custom-cartpole/1", "models:/custom-cartpole/candidate", "runs:/0a1b/policy/checkpoint/m.pt"):
        assert model_uris.is_registry_uri(uri), uri
    for other in ("s3://b/model_1.pt", "models:/only-a-name", "runs:/id-only", "checkpoints/model_1.pt", None):
        assert not model_uris.is_registry_uri(other), other


def test_the_schema_takes_registry_uris_in_every_checkpoint_field() -> None:
    assert validate_conf(_conf(mode="evaluate", policyS3Uri="models:/cartpole/2"))
    assert validate_conf(_conf(mode="evaluate", checkpointPath="runs:/abc/policy/checkpoint/model_1.pt"))
    conf = validate_conf(_conf(resumeCheckpoint="models:/cartpole/champion", init="warm-start"))
    assert conf["trainingConfig"]["init"] == "warm-start"


@pytest.mark.parametrize(("training", "message"), [
    ({"init": "warm-start"}, "trainingConfig.init: warm-start needs resumeCheckpoint"),
    ({"init": "resume"}, "trainingConfig.init: resume needs resumeCheckpoint"),
    ({"init": "from-scratch", "resumeCheckpoint": "models:/c/1"}, "trainingConfig.init: from-scratch trains new"),
    ({"mode": "evaluate", "init": "resume", "checkpointPath": "models:/c/1"}, "trainingConfig.init: only used in"),
    ({"init": "fine-tune"}, "trainingConfig.init"),
])
def test_init_is_checked_with_its_checkpoint(training: dict, message: str) -> None:
    with pytest.raises(ConfigValidationError, match=message):
        validate_conf(_conf(**training))


def test_a_registry_uri_without_a_tracking_server_fails_before_any_gpu_time() -> None:
    tc = {"mode": "train", "resumeCheckpoint": "models:/cartpole/1", "checkpointPath": None}
    with pytest.raises(model_uris.ModelUriError, match=r"trainingConfig.resumeCheckpoint: models:/cartpole/1 names "
                                                       "the MLflow registry, but this deployment has no tracking"):
        model_uris.resolve_fields(tc, "", "/staging")
    assert model_uris.resolve_fields({"resumeCheckpoint": "s3://b/m.pt"}, "", "/staging") == (
        {"resumeCheckpoint": "s3://b/m.pt"}, {})  # nothing to resolve: no server asked
