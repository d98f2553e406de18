"""Resolve: the env package and checkpoint found in the asset, and the JobSpec built."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from isaaclab_pipeline.config import validate_conf
from isaaclab_pipeline.resolve import ResolveError, build_job_spec, discover_checkpoint
from isaaclab_pipeline.settings import PipelineSettings
from isaaclab_pipeline.storage import LocalStorage

SETTINGS = PipelineSettings(staging_uri="/staging", overrides=["agent.save_interval=25"])
OUT = tempfile.mkdtemp(prefix="isaaclab-resolve-out-")  # resolve writes (and deletes) a probe under the output
JOB = "0b6d2c1e-7d7e-5b5c-9f6e-1f2a3b4c5d6e"


def _touch(path: Path, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def _conf(asset: str, **tc: object) -> dict:
    return validate_conf({"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", **tc},
                          "inputS3AssetFilePath": asset, "outputS3Path": OUT})


def test_package_named_directly(tmp_path: Path) -> None:
    pkg = _touch(tmp_path / "asset" / "env.tar.gz")
    spec = build_job_spec(_conf(str(pkg), numEnvs=64), JOB, SETTINGS)
    assert spec.env_package_uri == str(pkg)
    assert spec.staging_uri == f"/staging/{JOB}"
    assert (spec.num_envs, spec.overrides) == (64, ["agent.save_interval=25"])


def test_package_found_under_a_prefix(tmp_path: Path) -> None:
    _touch(tmp_path / "asset" / "README.md")
    pkg = _touch(tmp_path / "asset" / "pkgs" / "env-1.0.0-py3-none-any.whl")
    spec = build_job_spec(_conf(f"file://{tmp_path}/asset/"), JOB, SETTINGS)
    assert spec.env_package_uri == f"file://{pkg}"


def test_two_packages_is_an_error_naming_both(tmp_path: Path) -> None:
    _touch(tmp_path / "asset" / "a.tar.gz")
    _touch(tmp_path / "asset" / "b.zip")
    with pytest.raises(ResolveError, match=r"inputS3AssetFilePath: .* holds 2 env packages"):
        build_job_spec(_conf(str(tmp_path / "asset")), JOB, SETTINGS)


def test_empty_asset_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResolveError, match="inputS3AssetFilePath: nothing found"):
        build_job_spec(_conf(str(tmp_path / "missing")), JOB, SETTINGS)


def test_checkpoint_discovery_prefers_newest_folder_then_highest_iteration(tmp_path: Path) -> None:
    _touch(tmp_path / "logs" / "old" / "model_5000.pt", mtime=1000)
    _touch(tmp_path / "logs" / "new" / "model_999.pt", mtime=2000)
    best = _touch(tmp_path / "logs" / "new" / "model_1500.pt", mtime=1999)
    assert discover_checkpoint(LocalStorage().list(str(tmp_path))) == str(best)


def test_relative_checkpoint_resolves_against_the_asset_folder(tmp_path: Path) -> None:
    pkg = _touch(tmp_path / "asset" / "env.tar.gz")
    ckpt = _touch(tmp_path / "asset" / "runs" / "model_10.pt")
    spec = build_job_spec(_conf(str(pkg), mode="evaluate", checkpointPath="runs/model_10.pt"), JOB, SETTINGS)
    assert spec.checkpoint_uri == str(ckpt)
    assert spec.num_envs == 100


def test_missing_checkpoint_names_the_field(tmp_path: Path) -> None:
    pkg = _touch(tmp_path / "asset" / "env.tar.gz")
    with pytest.raises(ResolveError, match="trainingConfig.resumeCheckpoint: .*model_1.pt does not exist"):
        build_job_spec(_conf(str(pkg), resumeCheckpoint="model_1.pt"), JOB, SETTINGS)


def test_job_spec_round_trips_through_its_schema(tmp_path: Path) -> None:
    from isaaclab_pipeline.jobspec import JobSpec

    pkg = _touch(tmp_path / "env.tar.gz")
    spec = build_job_spec(_conf(str(pkg)), JOB, SETTINGS)
    data = spec.to_dict()
    assert data["envPackageUri"] == str(pkg) and data["numEnvs"] == 4096
    assert JobSpec.from_dict(data) == spec


def _known(tmp_path: Path) -> Path:
    import json

    path = tmp_path / "known-tasks.json"
    path.write_text(json.dumps({"sources": {"isaaclab_tasks": ["Isaac-Ant", "Isaac-Cartpole-Direct"]},
                                "aliases": {"Isaac-Ant-v0": "Isaac-Ant"}}))
    return path


def test_unknown_image_task_is_refused_before_any_gpu_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(_known(tmp_path)))
    conf = validate_conf({"trainingConfig": {"task": "Isaac-Antt"}, "outputS3Path": OUT})
    with pytest.raises(ResolveError, match=r"trainingConfig.task: 'Isaac-Antt' is not registered .*closest: Isaac-A"):
        build_job_spec(conf, JOB, SETTINGS)
    for task in ("Isaac-Ant", "Isaac-Ant-v0"):  # registered, or a 2.x alias the runner maps
        conf = validate_conf({"trainingConfig": {"task": task}, "outputS3Path": OUT})
        assert build_job_spec(conf, JOB, SETTINGS).task == task


def test_package_tasks_are_checked_by_the_runner_not_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(_known(tmp_path)))
    pkg = _touch(tmp_path / "asset" / "custom_cartpole-1.0.0.tar.gz")  # an sdist name is a package too
    assert build_job_spec(_conf(str(pkg)), JOB, SETTINGS).env_package_uri == str(pkg)


def test_no_saved_task_list_means_no_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(tmp_path / "absent.json"))
    conf = validate_conf({"trainingConfig": {"task": "Anything-Goes"}, "outputS3Path": OUT})
    assert build_job_spec(conf, JOB, SETTINGS).task == "Anything-Goes"


# The URI policy and the writable check: before anything is listed, and before any GPU time


BATCH = PipelineSettings(compute_backend="batch", staging_uri="s3://stage/isaaclab",
                         allowed_uri_prefixes=("s3://assets/team-a/", "s3://outputs/"))


@pytest.mark.parametrize(("conf", "field"), [
    ({"inputS3AssetFilePath": "file:///etc/", "outputS3Path": "s3://outputs/x"}, "inputS3AssetFilePath"),
    ({"inputS3AssetFilePath": "/etc", "outputS3Path": "s3://outputs/x"}, "inputS3AssetFilePath"),
    ({"outputS3Path": "/opt/airflow/dags"}, "outputS3Path"),
    ({"outputS3Path": "file:///opt/airflow/dags"}, "outputS3Path"),
    ({"inputS3AssetFilePath": "s3://assets/team-b/pkg.tar.gz", "outputS3Path": "s3://outputs/x"},
     "inputS3AssetFilePath"),
    ({"outputS3Path": "s3://somebody-elses-bucket/x"}, "outputS3Path"),
])
def test_batch_deployment_refuses_what_it_does_not_allow(conf: dict, field: str) -> None:
    """Nothing is listed, read or written: the refusal comes first, naming the field, without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    normalized = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, **conf})
    with pytest.raises(ResolveError, match=rf"does not allow:\n  - {field}: ") as info:
        build_job_spec(normalized, JOB, BATCH)
    assert isinstance(info.value, AirflowFailException)


def test_batch_without_an_allow_list_refuses_every_s3_uri() -> None:
    import dataclasses

    conf = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, "outputS3Path": "s3://outputs/x"})
    with pytest.raises(ResolveError, match="isaaclab_allowed_uri_prefixes"):
        build_job_spec(conf, JOB, dataclasses.replace(BATCH, allowed_uri_prefixes=()))


def test_unwritable_output_fails_before_any_gpu_time(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    conf = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, "outputS3Path": f"file://{blocked}/out"})
    with pytest.raises(ResolveError, match=rf"outputS3Path: file://{blocked}/out/{JOB} is not writable"):
        build_job_spec(conf, JOB, SETTINGS)


def test_writable_output_is_left_clean(tmp_path: Path) -> None:
    conf = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, "outputS3Path": str(tmp_path / "out")})
    build_job_spec(conf, JOB, SETTINGS)
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


def test_s3_output_probe_against_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket that exists is writable (the probe is deleted again); a missing bucket is a ResolveError."""
    import json

    import boto3
    from moto import mock_aws

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws",
                                                               "extra": {"region_name": "us-east-1"}}))
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", "/nonexistent/known-tasks.json")
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="outputs")
        conf = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, "outputS3Path": "s3://outputs/team"})
        assert build_job_spec(conf, JOB, BATCH).task == "Isaac-Ant-v0"
        assert boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="outputs")["KeyCount"] == 0
        missing = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, "outputS3Path": "s3://outputs-gone/x"})
        allow = PipelineSettings(compute_backend="batch", staging_uri="s3://stage/i",
                                 allowed_uri_prefixes=("s3://outputs-gone/",))
        with pytest.raises(ResolveError, match="outputS3Path: s3://outputs-gone/x/.* is not writable .*NoSuchBucket"):
            build_job_spec(missing, JOB, allow)


def test_relative_checkpoint_without_an_asset_is_refused_here_naming_the_fix() -> None:
    """The user guide's Option 1 passes validate_config (VAMS adds the asset); without one resolve says so."""
    conf = validate_conf({"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct", "mode": "evaluate",
                                             "checkpointPath": "checkpoints/model_300.pt"}, "outputS3Path": OUT})
    with pytest.raises(ResolveError, match="checkpointPath: 'checkpoints/model_300.pt' is relative to the asset.*"
                                           "inputS3AssetFilePath"):
        build_job_spec(conf, JOB, SETTINGS)


def test_asset_keys_with_spaces_resolve(tmp_path: Path) -> None:
    """VAMS file names have spaces."""
    pkg = _touch(tmp_path / "my asset" / "my custom env.tar.gz")
    ckpt = _touch(tmp_path / "my asset" / "checkpoints" / "model 300.pt")
    spec = build_job_spec(_conf(str(tmp_path / "my asset"), mode="evaluate", checkpointPath="checkpoints/model 300.pt"),
                          JOB, SETTINGS)
    assert (spec.env_package_uri, spec.checkpoint_uri) == (str(pkg), str(ckpt))


def test_the_install_timeout_is_the_deployments_and_travels_in_the_spec(tmp_path: Path, monkeypatch) -> None:
    from isaaclab_pipeline.jobspec import JobSpec

    pkg = _touch(tmp_path / "asset" / "env.tar.gz")
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_INSTALL_TIMEOUT_S", "45")
    settings = PipelineSettings.load()
    assert settings.install_timeout_s == 45
    spec = build_job_spec(_conf(str(pkg)), JOB, settings)
    assert spec.install_timeout_s == 45
    assert JobSpec.from_dict(spec.to_dict()).install_timeout_s == 45  # valid against the schema
    assert build_job_spec(_conf(str(pkg)), JOB, SETTINGS).install_timeout_s is None  # unset: the runner's default
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_INSTALL_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match=r"isaaclab_install_timeout_s is '0'; set a whole number >= 1"):
        PipelineSettings.load()
