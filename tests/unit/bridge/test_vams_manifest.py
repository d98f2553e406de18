"""The bridge reads both of VAMS's contracts: the 2.6 manifest + configuration file, and the legacy body fields.

Payloads come from tests/vams_contract.py, built from VAMS's source (each builder cites its file)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import vams_contract as vc
from vams_bridge.payload import BridgeInputError, build_conf, run_note

TOKEN = "AAAAKgAAAAIAAAAAAAAAAQ-secret-task-token"
ASSETS, RUN = "vams-assets", "vams-run-io"  # the asset's bucket and the execution's I/O bucket differ


class FakeS3:
    """``read_json`` over a dict of s3:// URI → bytes; a missing key fails as the handler's reader does."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.read: list[str] = []

    def __call__(self, uri: str) -> Any:
        self.read.append(uri)
        if uri not in self.objects:
            raise BridgeInputError(f"cannot read {uri} (NoSuchKey)")
        return json.loads(self.objects[uri])


def vams26(files: list[dict[str, Any]], config: bytes | None = vc.configuration(task="Isaac-Custom-Cartpole-Direct",
                                                                               numEnvs=64),
           **body_extra: Any) -> tuple[dict[str, Any], FakeS3]:
    body = {**vc.task_body(RUN, TOKEN, config=config is not None), **body_extra}
    objects = {body["inputManifestS3Location"]: json.dumps(vc.manifest(files, RUN)).encode()}
    if config is not None:
        objects[body["inputConfigurationS3Location"]] = config
    return body, FakeS3(objects)


def test_a_vams_26_call_resolves_from_the_manifest_and_the_configuration_file() -> None:
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/custom_cartpole.tar.gz")])
    conf = build_conf(body, s3)
    assert conf["trainingConfig"] == {"task": "Isaac-Custom-Cartpole-Direct", "numEnvs": 64}
    assert conf["computeConfig"] == {"numNodes": 1}
    assert conf["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/custom_cartpole.tar.gz"
    # outputs.files of the manifest, in the run I/O bucket, not the asset's: VAMS ingests from there
    assert conf["outputS3Path"] == f"s3://{RUN}/{vc.output_prefix('files')}"
    assert conf["vams"] == {
        "callback": True, "executingUserName": "alice", "workflowDatabaseId": "GLOBAL",
        "workflowId": "isaac-lab-training", "workflowExecutionId": vc.EXECUTION_ID, "databaseId": "robotics",
        "assetId": "a1", "pipelineExecutionId": vc.PIPELINE_EXECUTION_ID,
        "outputs": {k: f"s3://{RUN}/{vc.output_prefix(k)}" for k in ("previews", "metadata", "results")},
        "orchestration": {"busArn": vc.BUS_ARN, "eventPrefix": vc.EVENT_PREFIX}}
    assert TOKEN not in json.dumps(conf)
    note = run_note(conf)
    assert vc.EXECUTION_ID in note and "assetId a1" in note and "alice" in note


def test_the_whole_asset_or_a_folder_is_the_asset_root() -> None:
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/")])
    assert build_conf(body, s3)["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/"
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/envs/")])
    assert build_conf(body, s3)["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/envs/"


def test_several_input_files_give_the_package_and_the_selected_checkpoint() -> None:
    files = [vc.input_file(ASSETS, "a1", "/README.md"), vc.input_file(ASSETS, "a1", "/checkpoints/model_300.pt"),
             vc.input_file(ASSETS, "a1", "/dist/custom_cartpole-0.1.0.tar.gz")]
    body, s3 = vams26(files, vc.configuration(mode="evaluate", task="Isaac-Custom-Cartpole-Direct", numEpisodes=5))
    conf = build_conf(body, s3)
    assert conf["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/dist/custom_cartpole-0.1.0.tar.gz"
    assert conf["trainingConfig"]["policyS3Uri"] == f"s3://{ASSETS}/a1/checkpoints/model_300.pt"
    # a configuration that names its checkpoint keeps it
    body, s3 = vams26(files, vc.configuration(mode="evaluate", task="T", checkpointPath="checkpoints/other.pt"))
    assert "policyS3Uri" not in build_conf(body, s3)["trainingConfig"]


def test_files_without_a_package_look_in_their_asset() -> None:
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/checkpoints/model_9.pt")],
                      vc.configuration(mode="evaluate", task="T"))
    conf = build_conf(body, s3)
    assert conf["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/"
    assert conf["trainingConfig"]["policyS3Uri"] == f"s3://{ASSETS}/a1/checkpoints/model_9.pt"


def test_two_packages_are_refused_naming_them() -> None:
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/a.tar.gz"), vc.input_file(ASSETS, "a1", "/b.whl")])
    with pytest.raises(BridgeInputError, match=r"inputFiles: 2 env packages selected \(s3://vams-assets/a1/a.tar.gz, "
                                               r"s3://vams-assets/a1/b.whl\); select one"):
        build_conf(body, s3)


def test_a_missing_configuration_file_names_its_location_and_why() -> None:
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/p.tar.gz")])
    s3.objects.pop(body["inputConfigurationS3Location"])
    with pytest.raises(BridgeInputError) as err:
        build_conf(body, s3)
    assert str(err.value) == (f"inputConfigurationS3Location: cannot read s3://{RUN}/{vc.input_prefix()}config.json "
                              "(NoSuchKey)")


def test_an_unreadable_manifest_is_an_error_not_a_fallback() -> None:
    """manifestHelper.fetch_manifest raises for a named manifest it cannot read; so do we, even with legacy paths."""
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/p.tar.gz")], outputS3AssetFilesPath="s3://legacy/out/")
    s3.objects.pop(body["inputManifestS3Location"])
    with pytest.raises(BridgeInputError, match=r"^inputManifestS3Location: cannot read s3://vams-run-io/pipelines/"
                                               r"workflowExecutionInputs/.*/manifest.json \(NoSuchKey\)$"):
        build_conf(body, s3)
    s3.objects[body["inputManifestS3Location"]] = b"[1, 2]"
    with pytest.raises(BridgeInputError, match="is not a JSON object"):
        build_conf(body, s3)


def test_a_manifest_without_outputs_falls_back_to_the_legacy_fields() -> None:
    """Manifest values win only when present (manifestHelper.resolve_inputs)."""
    body, s3 = vams26([vc.input_file(ASSETS, "a1", "/p.tar.gz")], outputS3AssetFilesPath="s3://legacy/out/")
    env = json.loads(s3.objects[body["inputManifestS3Location"]])
    env["outputs"] = {}
    s3.objects[body["inputManifestS3Location"]] = json.dumps(env).encode()
    conf = build_conf(body, s3)
    assert conf["outputS3Path"] == "s3://legacy/out/" and "outputs" not in conf["vams"]


def test_a_json_config_selected_alone_is_the_assets_config() -> None:
    files = [vc.input_file(ASSETS, "a1", "/eval/cartpole-eval.json")]
    body, s3 = vams26(files, config=None)
    s3.objects[f"s3://{ASSETS}/a1/eval/cartpole-eval.json"] = json.dumps(
        {"trainingConfig": {"mode": "evaluate", "task": "T", "numEpisodes": 3}}).encode()
    conf = build_conf(body, s3)
    assert conf["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/eval/"
    assert conf["trainingConfig"] == {"mode": "evaluate", "task": "T", "numEpisodes": 3}


def test_no_input_files_runs_a_built_in_task_writing_to_the_output_target() -> None:
    body, s3 = vams26([], vc.configuration(task="Isaac-Cartpole-v0"))
    env = json.loads(s3.objects[body["inputManifestS3Location"]])
    env["outputTarget"].update(assetId="a9", databaseId="robotics")
    s3.objects[body["inputManifestS3Location"]] = json.dumps(env).encode()
    conf = build_conf(body, s3)
    assert "inputS3AssetFilePath" not in conf and conf["vams"]["assetId"] == "a9"


def test_the_configuration_file_wins_over_inputparameters_over_the_asset_config_over_defaults() -> None:
    files = [vc.input_file(ASSETS, "a1", "/train.json")]
    body, s3 = vams26(files, vc.configuration(task="T", maxIterations=50, seed=None),
                      inputParameters=json.dumps({"trainingConfig": {"maxIterations": 10, "seed": 11}}))
    s3.objects[f"s3://{ASSETS}/a1/train.json"] = json.dumps(
        {"workflowName": "isaac-lab-training", "parameters": {"trainingConfig": {"numEnvs": 256, "seed": 7}}}).encode()
    conf = build_conf(body, s3, defaults={"trainingConfig": {"numEnvs": 4096, "rlLibrary": "skrl"}})
    assert conf["trainingConfig"] == {"task": "T", "maxIterations": 50, "seed": 11, "numEnvs": 256,
                                      "rlLibrary": "skrl"}


def test_the_legacy_body_still_works_and_its_preview_and_metadata_paths_are_kept() -> None:
    body = vc.legacy_body(TOKEN, f"s3://{ASSETS}/a1/custom_cartpole.tar.gz", f"s3://{ASSETS}/a1/out/",
                          inputParameters=json.dumps({"trainingConfig": {"task": "T"}}))
    s3 = FakeS3({})
    conf = build_conf(body, s3)
    assert s3.read == []  # no manifest named: nothing is read
    assert conf["inputS3AssetFilePath"] == f"s3://{ASSETS}/a1/custom_cartpole.tar.gz"
    assert conf["outputS3Path"] == f"s3://{ASSETS}/a1/out/"
    assert conf["vams"] == {"callback": True, "executingUserName": "bob",
                            "outputs": {"previews": f"s3://{ASSETS}/a1/out-preview/",
                                        "metadata": f"s3://{ASSETS}/a1/out-metadata/"}}


def test_manifest_entries_without_a_location_are_refused() -> None:
    body, s3 = vams26([{"relativePath": "/x.tar.gz", "bucket": ASSETS}])
    with pytest.raises(BridgeInputError, match=r"inputFiles\[0\]: needs a bucket and a key"):
        build_conf(body, s3)
