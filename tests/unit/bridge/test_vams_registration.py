"""The registration bundle (vams_bridge/vamsSchema/) passes VAMS's own rules, fits our timeouts and conf schema, and
turns into the vamscli calls that register it.

VAMS's rules are restated here from its source (awslabs/visual-asset-management-system, read 2026-12-06), each
check naming the function it follows:

- backend/backend/common/workflows/vamsSchemaImport.py: ``build_import_requests`` (bundle structure, required
  names and ids, the Lambda resource injected under ``executionConfig.lambda.resourceId``);
- backend/backend/models/pipelines.py (V2): ``_validate_execution_config``, ``_validate_pipeline_system_config``,
  ``_validate_system_config_shape``, ``_validate_input_file_filters``, ``validate_system_config_keys``,
  ``CreateTemplateRequestModel``;
- backend/backend/models/workflows.py (V2): ``CreateWorkflowRequestModel`` with ``_validate_input_file_arity``,
  ``_validate_output_target``, ``_validate_allow_workflow_trigger_chaining``, ``SpecifiedPipelineInput``;
- backend/backend/common/validators.py: the ``ID`` validator (``^[-_a-zA-Z0-9]{3,63}$``, GLOBAL allowed where
  ``allowGlobalKeyword``);
- backend/backend/models/pipelines.py (V1 model, still the import's rule): heartbeat smaller than the task timeout.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from vams_bridge.registration import load_bundle, main, vamscli_commands

ID = re.compile(r"^[-_a-zA-Z0-9]{3,63}$")
LAMBDA_NAME = re.compile(r"^[a-zA-Z0-9-_]{1,140}(:[a-zA-Z0-9-_$]{1,128})?$")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
EXECUTION_TYPES = ("Lambda", "SQS", "EventBridge", "DeadlineCloud")
EXECUTION_KEYS = ("executionType", "waitForCallback", "taskTimeout", "taskHeartbeatTimeout", "lambda", "sqs",
                  "eventBridge", "deadlineCloud")
SYSTEM_KEYS = ("inputFileArity", "assetScope", "metadataInputs", "inputFileFilters", "auxPreviewPipelineSuffix",
               "requireTemplate", "allowCustomTemplateOverride", "concurrencyRestriction", "outputTarget",
               "allowWorkflowTriggerChaining", "defaultOutputFileBaseExecutionPathExtension")
ARITIES = ("none", "one", "multi")
SCOPE_KEYS = ("crossAssetAllowed", "singleAssetOnly", "wholeAssetAllowed", "folderAllowed", "wholeAsset")
METADATA_KEYS = ("assetMetadata", "fileMetadata", "fileAttributes", "databaseMetadata")
MAX_TIMEOUT_S = 604800
TEMPLATE_FORMATS = ("json", "yaml", "openjd", "xml", "raw")
TEMPLATE_OVERRIDE_KEYS = ("inputFileArity", "metadataInputs", "assetScope", "inputFileFilters")
CONCURRENCY = ("none", "perAsset", "perInputFile")


def vams_id(value: Any, allow_global: bool = False) -> list[str]:
    if allow_global and value == "GLOBAL":
        return []
    return [] if isinstance(value, str) and ID.match(value) else [f"{value!r} is not a VAMS id"]


def system_config_problems(cfg: dict[str, Any], where: str) -> list[str]:
    """models/pipelines.py: _validate_system_config_shape + validate_system_config_keys (+ the pipeline booleans)."""
    out = [f"{where} has unknown key {k!r}" for k in cfg if k not in SYSTEM_KEYS]
    if len(json.dumps(cfg).encode()) > 64 * 1024:
        out.append(f"{where} is over 64 KB")
    if cfg.get("inputFileArity") not in (None, *ARITIES):
        out.append(f"{where}.inputFileArity {cfg['inputFileArity']!r}")
    for block, keys in (("assetScope", SCOPE_KEYS), ("metadataInputs", METADATA_KEYS)):
        for k, v in (cfg.get(block) or {}).items():
            if k not in keys or not isinstance(v, bool):
                out.append(f"{where}.{block}.{k}={v!r}")
    filters = cfg.get("inputFileFilters")
    if filters is not None:
        out += [f"{where}.inputFileFilters key {k!r}" for k in filters if k not in ("allow", "exclude")]
        for k in ("allow", "exclude"):
            if k in filters and not (isinstance(filters[k], list) and all(isinstance(x, str) for x in filters[k])):
                out.append(f"{where}.inputFileFilters.{k} is not a list of strings")
        out += [f"{where}.inputFileFilters.exclude excludes everything" for p in filters.get("exclude") or []
                if p.strip() in ("*", "**", "*.*", "**/*")]
    for k in ("requireTemplate", "allowCustomTemplateOverride", "allowWorkflowTriggerChaining"):
        if k in cfg and not isinstance(cfg[k], bool):
            out.append(f"{where}.{k} is not a boolean")
    return out


def pipeline_problems(pipeline: dict[str, Any]) -> list[str]:
    """models/pipelines.py CreatePipelineRequestModel (V2) and vamsSchemaImport.build_import_requests."""
    out = [] if pipeline.get("pipelineName", "").strip() else ["pipelineName missing"]
    out += vams_id(pipeline.get("pipelineId"))
    out += [f"{k} has control characters" for k in ("pipelineName", "category") if CONTROL.search(pipeline.get(k, ""))]
    out += [] if len(pipeline.get("description", "")) <= 1024 else ["description over 1024"]
    ec = pipeline.get("executionConfig") or {}
    out += [f"executionConfig has unknown key {k!r}" for k in ec if k not in EXECUTION_KEYS]
    if ec.get("executionType", "Lambda") not in EXECUTION_TYPES:
        out.append("executionType")
    if ec.get("executionType", "Lambda") == "Lambda":
        rid = (ec.get("lambda") or {}).get("resourceId")
        if rid and not (rid.startswith("arn:") or LAMBDA_NAME.match(rid)):
            out.append(f"lambda.resourceId {rid!r}")
    if ec.get("waitForCallback") not in (None, "", "Enabled", "Disabled"):
        out.append("waitForCallback")
    seconds = {}
    for k in ("taskTimeout", "taskHeartbeatTimeout"):
        if ec.get(k) not in (None, ""):
            try:
                seconds[k] = int(ec[k])
            except ValueError:
                out.append(f"{k} is not an integer")
                continue
            if not 0 < seconds[k] <= MAX_TIMEOUT_S:
                out.append(f"{k} out of range")
    if len(seconds) == 2 and seconds["taskHeartbeatTimeout"] >= seconds["taskTimeout"]:
        out.append("taskHeartbeatTimeout not smaller than taskTimeout")
    return out + system_config_problems(pipeline.get("systemConfig") or {}, "pipeline.systemConfig")


def workflow_problems(workflow: dict[str, Any]) -> list[str]:
    """models/workflows.py CreateWorkflowRequestModel (V2)."""
    out = [] if workflow.get("workflowName", "").strip() else ["workflowName missing"]
    out += vams_id(workflow.get("workflowId"))
    out += [f"{k} has control characters" for k in ("workflowName", "category") if CONTROL.search(workflow.get(k, ""))]
    refs = workflow.get("specifiedPipelines") or []
    out += [] if 1 <= len(refs) <= 100 else ["specifiedPipelines needs 1..100 pipelines"]
    for ref in refs:
        out += vams_id(ref.get("pipelineId")) + vams_id(ref.get("pipelineDatabaseId"), allow_global=True)
        out += vams_id(ref["defaultTemplateId"]) if ref.get("defaultTemplateId") else []
    cfg = workflow.get("systemConfig") or {}
    if cfg.get("concurrencyRestriction") not in (None, *CONCURRENCY):
        out.append("concurrencyRestriction")
    target = cfg.get("outputTarget") or {}
    if "allowOverride" in target and not isinstance(target["allowOverride"], bool):
        out.append("outputTarget.allowOverride is not a boolean")
    if target.get("locationType") not in (None, "asset", "none"):
        out.append("outputTarget.locationType")
    if target.get("locationType") == "asset" and cfg.get("inputFileArity", "one") == "none" \
            and not target.get("allowOverride"):
        out.append("arity none writing to an asset needs allowOverride")
    ext = cfg.get("defaultOutputFileBaseExecutionPathExtension") or ""
    if ".." in ext or "\\" in ext:
        out.append("defaultOutputFileBaseExecutionPathExtension")
    out += [f"trigger without triggerType: {t}" for t in workflow.get("triggers") or [] if not t.get("triggerType")]
    return out + system_config_problems(cfg, "workflow.systemConfig")


def template_problems(template: dict[str, Any]) -> list[str]:
    """models/pipelines.py CreateTemplateRequestModel; vamsSchemaImport requires templateId and templateName."""
    out = vams_id(template.get("templateId"))
    out += [] if template.get("templateName", "").strip() else ["templateName missing"]
    out += ["templateName has control characters"] if CONTROL.search(template.get("templateName", "")) else []
    if template.get("configFormat", "json") not in TEMPLATE_FORMATS:
        out.append("configFormat")
    if template.get("configFormat", "json") == "json":
        try:
            json.loads(template.get("configBody") or "{}")
        except ValueError:
            out.append("configBody is not valid JSON")
    out += [f"overrides key {k!r}" for k in template.get("overrides") or {} if k not in TEMPLATE_OVERRIDE_KEYS]
    out += [] if len(template.get("inputInstructions", "")) <= 4096 else ["inputInstructions over 4096"]
    return out


def test_the_bundle_passes_vamss_registration_rules() -> None:
    bundle = load_bundle(lambda_name="vams-isaac-lab-training-bridge")
    problems = pipeline_problems(bundle["pipeline"]) + workflow_problems(bundle["workflow"])
    for template in bundle["templates"]:
        problems += template_problems(template)
    assert problems == []
    assert [t["templateId"] for t in bundle["templates"]] == ["isaac-lab-evaluate", "isaac-lab-train"]


def test_the_rules_catch_what_vams_refuses() -> None:
    """Controls: each restated rule fails on the input VAMS's model rejects, so an empty list above means something."""
    pipeline = load_bundle()["pipeline"]
    bad = json.loads(json.dumps(pipeline))
    bad["executionConfig"].update(taskHeartbeatTimeout="90000", retries="3")
    bad["systemConfig"].update(inputFileArity="two", inputFileFilters={"exclude": ["*"]})
    bad["systemConfig"]["assetScope"]["wholeAsset"] = "yes"
    assert len(pipeline_problems(bad)) == 5, pipeline_problems(bad)
    workflow = load_bundle()["workflow"]
    bad_wf = json.loads(json.dumps(workflow))
    bad_wf["systemConfig"].update(inputFileArity="none", outputTarget={"locationType": "asset"})
    bad_wf["specifiedPipelines"] = [{"pipelineId": "x"}]
    assert len(workflow_problems(bad_wf)) == 3, workflow_problems(bad_wf)
    assert len(template_problems({"templateId": "t t", "templateName": "", "configBody": "{"})) == 3


def test_timeouts_match_the_dag() -> None:
    """VAMS's task timeout outlasts the DAG's longest wait, and its heartbeat timeout the longest gap between two of
    our heartbeats (the trigger wakes the wait step every isaaclab_heartbeat_interval_s, which heartbeats at most
    every isaaclab_vams_heartbeat_minutes)."""
    from isaaclab_pipeline.settings import PipelineSettings
    from isaaclab_tools.cli import load_dag

    ec = load_bundle()["pipeline"]["executionConfig"]
    assert (ec["executionType"], ec["waitForCallback"]) == ("Lambda", "Enabled")
    wait = load_dag().get_task("wait_for_job").execution_timeout
    assert int(ec["taskTimeout"]) >= (wait + timedelta(minutes=30)).total_seconds()
    longest_gap = max(PipelineSettings.load().heartbeat_interval_s, 5 * 60) + 60  # + a poll and a worker start
    assert int(ec["taskHeartbeatTimeout"]) >= 2 * longest_gap


def test_arity_and_scope_fit_an_env_package_and_its_checkpoints() -> None:
    bundle = load_bundle()
    for cfg in (bundle["pipeline"]["systemConfig"], bundle["workflow"]["systemConfig"]):
        assert cfg["inputFileArity"] == "multi"  # the package and a checkpoint
        assert cfg["assetScope"]["wholeAssetAllowed"] and cfg["assetScope"]["folderAllowed"]
        assert cfg["assetScope"]["singleAssetOnly"] and not cfg["assetScope"]["crossAssetAllowed"]
        assert cfg["inputFileFilters"]["allow"] == []  # an allow list would refuse the whole-asset selection
    # files land under {uuid}/ already: an execution path extension would move each file's name
    assert not bundle["workflow"]["systemConfig"].get("defaultOutputFileBaseExecutionPathExtension")
    assert "triggers" not in bundle["workflow"]  # started by hand, never on every upload


def test_the_templates_are_the_user_guides_defaults_and_valid_confs() -> None:
    from isaaclab_pipeline.config import validate_conf
    from isaaclab_pipeline.form import validate_submission

    bodies = {t["templateId"]: json.loads(t["configBody"]) for t in load_bundle()["templates"]}
    train, evaluate = bodies["isaac-lab-train"]["trainingConfig"], bodies["isaac-lab-evaluate"]["trainingConfig"]
    assert train == {"mode": "train", "task": "Isaac-Cartpole-v0", "rlLibrary": "rsl_rl", "numEnvs": 4096,
                     "maxIterations": 1500}
    assert evaluate == {"mode": "evaluate", "task": "Isaac-Cartpole-v0", "rlLibrary": "rsl_rl", "numEnvs": 100,
                        "numEpisodes": 50, "recordVideo": False}
    for body in bodies.values():
        assert body["computeConfig"] == {"numNodes": 1}
        conf = validate_submission({**body, "inputS3AssetFilePath": "s3://vams-assets/a1/", "outputS3Path": "s3://vams-run-io/files/"})
        validate_conf(conf)


def test_the_vamscli_calls_register_pipeline_templates_then_workflow(tmp_path: Path) -> None:
    bundle = load_bundle(lambda_name="vams-my-bridge")
    commands = vamscli_commands(bundle, tmp_path, "robotics")
    assert [c[1:3] for c in commands] == [["pipeline", "create"], ["pipeline", "template"],
                                         ["pipeline", "template"], ["workflow", "create"]]
    create = commands[0]
    ec = json.loads(Path(create[create.index("--execution-config-file") + 1]).read_text())
    assert ec["lambda"] == {"resourceId": "vams-my-bridge"} and create[create.index("-d") + 1] == "robotics"
    train = next(c for c in commands if "isaac-lab-train" in c)
    assert "--default" in train and "--allow-custom-edit" in train
    body = Path(train[train.index("--config-body-file") + 1]).read_text()
    assert json.loads(body)["trainingConfig"]["maxIterations"] == 1500
    wf = commands[-1]
    refs = json.loads(Path(wf[wf.index("--specified-pipelines-file") + 1]).read_text())
    assert refs == [{"pipelineDatabaseId": "robotics", "pipelineId": "isaac-lab-training",
                     "defaultTemplateId": "isaac-lab-train"}]


def test_the_cli_refuses_a_function_vams_cannot_invoke(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--lambda-name", "isaac-bridge"])
    assert "starts with 'vams'" in capsys.readouterr().err
    assert main(["--lambda-name", "vams-isaac-lab-training-bridge"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4 and printed[0].startswith("vamscli pipeline create -d GLOBAL -p isaac-lab-training")
