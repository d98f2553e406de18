"""infra/isaaclab-training.yaml: cfn-lint clean, in step with the Batch backend, the settings and the DAG.

Checked as data here (parsed with cfn-lint's own decoder, contracts compared with the code that depends on
them); tests/infra/test_template_iam.py deploys it into a moto server and checks every AWS call the code
makes against the roles it creates.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from isaaclab_pipeline.backends.batch import RETRY_STRATEGY
from isaaclab_pipeline.settings import PipelineSettings
from isaaclab_pipeline.vams.token_store import DEFAULT_PREFIX

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "isaaclab-training.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
# Actions that accept no resource ARN (AWS's service authorization reference), the only ones allowed on "*".
RESOURCELESS = {
    "batch:DescribeJobs", "batch:ListJobs", "batch:DescribeJobQueues", "batch:DescribeJobDefinitions",
    "batch:DescribeComputeEnvironments",
    "logs:DescribeLogGroups", "s3:GetAccountPublicAccessBlock", "cloudwatch:PutMetricData",
    "states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    tpl, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return tpl


def _camel(obj: Any) -> Any:
    """CloudFormation's PascalCase keys → the API's camelCase (what the backend sends)."""
    if isinstance(obj, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_camel(v) for v in obj]
    return obj


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of the role's inline policies, both branches of a conditional one."""
    out = []
    for policy in role["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in st:
                out += [b for b in st["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}]
            else:
                out.append(st)
    return out


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def test_cfn_lint_clean() -> None:
    proc = subprocess.run([str(CFN_LINT), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_job_definitions_retry_like_the_backend(template) -> None:
    resources = template["Resources"]
    for name in ("TrainJobDefinition", "MultiNodeTrainJobDefinition"):
        props = resources[name]["Properties"]
        assert _camel(props["RetryStrategy"]) == RETRY_STRATEGY, name
        assert props["Timeout"] == {"AttemptDurationSeconds": {"Ref": "MaxRuntimeSeconds"}}
        assert props["PlatformCapabilities"] == ["EC2"]
    assert resources["TrainJobDefinition"]["Properties"]["Type"] == "container"
    multinode = resources["MultiNodeTrainJobDefinition"]["Properties"]
    assert multinode["Type"] == "multinode"
    # the backend's nodeOverrides target "0:" — one range covering every node, main included
    assert [r["TargetNodes"] for r in multinode["NodeProperties"]["NodeRangeProperties"]] == ["0:"]


def _job_containers(template: dict) -> list[dict]:
    """The single-node job definition's container and the multi-node one's (its one node range)."""
    resources = template["Resources"]
    return [resources["TrainJobDefinition"]["Properties"]["ContainerProperties"],
            resources["MultiNodeTrainJobDefinition"]["Properties"]["NodeProperties"]["NodeRangeProperties"][0]
            ["Container"]]


def test_containers_gpu_logs_image_role(template) -> None:
    for container in _job_containers(template):
        reqs = {r["Type"]: r["Value"] for r in container["ResourceRequirements"]}
        assert reqs["GPU"] == {"Ref": "GpusPerNode"}
        log = container["LogConfiguration"]
        assert log["LogDriver"] == "awslogs"
        assert log["Options"]["awslogs-group"] == {"Ref": "JobLogGroup"}
        assert container["JobRoleArn"] == {"Fn::GetAtt": ["BatchJobRole", "Arn"]}
        assert "TaskImageRepository.RepositoryUri" in container["Image"]["Fn::Sub"]
        assert container["LinuxParameters"]["SharedMemorySize"] == {"Ref": "SharedMemoryMiB"}


def test_compute_spot_first_then_on_demand_with_gpu_ami(template) -> None:
    resources = template["Resources"]
    spot = resources["SpotComputeEnvironment"]["Properties"]["ComputeResources"]
    on_demand = resources["OnDemandComputeEnvironment"]["Properties"]["ComputeResources"]
    assert spot["Type"] == "SPOT" and on_demand["Type"] == "EC2"
    for compute in (spot, on_demand):
        assert compute["Ec2Configuration"] == [{"ImageType": "ECS_AL2023_NVIDIA"}]
    # warm capacity: a deployment choice (default 0, no idle GPU bill), on the environment the queue tries first
    warm = template["Parameters"]["WarmMinVcpus"]
    assert (warm["Type"], warm["Default"], warm["MinValue"]) == ("Number", 0, 0)
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert "WarmMinVcpus" in next(g["Parameters"] for g in groups if g["Label"]["default"] == "Compute")
    assert spot["MinvCpus"] == {"Ref": "WarmMinVcpus"}
    assert on_demand["MinvCpus"] == {"Fn::If": ["UseSpot", 0, {"Ref": "WarmMinVcpus"}]}
    assert resources["SpotComputeEnvironment"]["Condition"] == "UseSpot"
    spot_first = resources["JobQueue"]["Properties"]["ComputeEnvironmentOrder"]["Fn::If"][1]
    assert [e["ComputeEnvironment"]["Ref"] for e in sorted(spot_first, key=lambda e: e["Order"])] == [
        "SpotComputeEnvironment", "OnDemandComputeEnvironment"]
    # multi-node parallel jobs can't run on Spot: the on-demand queue holds no spot environment
    on_demand_queue = resources["OnDemandJobQueue"]["Properties"]["ComputeEnvironmentOrder"]
    assert [e["ComputeEnvironment"]["Ref"] for e in on_demand_queue] == ["OnDemandComputeEnvironment"]
    for param in ("SpotInstanceTypes", "OnDemandInstanceTypes"):
        assert set(template["Parameters"][param]["Default"].split(",")) <= {"g4dn", "g5", "g6", "g6e", "p4d", "p5"}


def test_outputs_are_the_settings_the_dag_reads(template, monkeypatch) -> None:
    outputs = template["Outputs"]
    raw, _ = outputs["AirflowVariablesJson"]["Value"]["Fn::Sub"]
    values = {"JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/isaaclab-training",
              "OnDemandJobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/isaaclab-training-ondemand",
              "NamePrefix": "isaaclab", "GpusPerNode": "4", "MaxRuntimeSeconds": "7200",
              "PipelineBucket": "isaaclab-pipeline-123456789012-us-east-1", "VamsTokenPrefix": "/x/vams",
              "OutputPrefix": "outputs/", "AssetMirrorUri": "s3://isaac-assets-mirror/isaac/",
              "AllowedPrefixes": "s3://isaaclab-pipeline-123456789012-us-east-1/assets/ "
                                 "s3://isaaclab-pipeline-123456789012-us-east-1/outputs/ "}
    variables = json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], raw))
    # every Batch-related setting the DAG reads has a value, under the exact Variable name
    wanted = {f"isaaclab_{f}" for f in PipelineSettings.__dataclass_fields__
              if f.startswith("batch_") or f in ("compute_backend", "staging_uri", "aws_conn_id")}
    wanted.add("isaaclab_vams_token_prefix")  # read by the VAMS callbacks; must equal the bridge's prefix
    # required on Batch (every run is refused without it), and the deployment's defaults for outputs and caches
    wanted |= {"isaaclab_allowed_uri_prefixes", "isaaclab_default_output_uri", "isaaclab_cache_uri",
               "isaaclab_asset_mirror_uri"}
    assert set(variables) == wanted
    # each one also has its own output, whose description names the Variable
    described = {m.group(0) for o in outputs.values() for m in re.finditer(r"isaaclab_\w+", o["Description"])}
    assert wanted <= described
    # and the settings loader takes them as they are (AIRFLOW_VAR_ form, as a secrets backend would give them)
    for key, value in variables.items():
        monkeypatch.setenv(f"AIRFLOW_VAR_{key.upper()}", value)
    settings = PipelineSettings.load()
    assert settings.compute_backend == "batch"
    assert settings.batch_job_queue == values["JobQueue"]
    assert settings.batch_multinode_job_queue == values["OnDemandJobQueue"]
    assert settings.batch_job_definition == "isaaclab-train"
    assert settings.batch_multinode_job_definition == "isaaclab-train-multinode"
    assert (settings.batch_gpus_per_node, settings.batch_max_runtime_s) == (4, 7200)
    assert settings.staging_uri == "s3://isaaclab-pipeline-123456789012-us-east-1/staging"
    assert settings.allowed_uri_prefixes == ("s3://isaaclab-pipeline-123456789012-us-east-1/assets/",
                                             "s3://isaaclab-pipeline-123456789012-us-east-1/outputs/")
    assert settings.default_output_uri == "s3://isaaclab-pipeline-123456789012-us-east-1/outputs/"
    assert settings.cache_uri == "s3://isaaclab-pipeline-123456789012-us-east-1/cache"
    assert settings.asset_mirror_uri == "s3://isaac-assets-mirror/isaac/"  # the template parameter, as given
    # the JSON's allowed prefixes are the output's own expression
    sub_values = outputs["AirflowVariablesJson"]["Value"]["Fn::Sub"][1]
    assert sub_values["AllowedPrefixes"] == outputs["IsaaclabAllowedUriPrefixes"]["Value"]
    assert template["Parameters"]["VamsTokenPrefix"]["Default"] == DEFAULT_PREFIX  # the code's default
    # the names in the JSON match the job definitions' names in the template
    resources = template["Resources"]
    assert resources["TrainJobDefinition"]["Properties"]["JobDefinitionName"] == {"Fn::Sub": "${NamePrefix}-train"}
    assert resources["MultiNodeTrainJobDefinition"]["Properties"]["JobDefinitionName"] == {
        "Fn::Sub": "${NamePrefix}-train-multinode"}


def test_least_privilege(template) -> None:
    resources = template["Resources"]
    roles = {name: r for name, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    for name, role in roles.items():
        for st in _statements(role):
            if st["Effect"] != "Allow":
                continue
            for action in _actions(st):
                assert action != "*" and not action.endswith(":*"), (name, action)
            if st.get("Resource") == "*":
                assert set(_actions(st)) <= RESOURCELESS, (name, st)
    job = [a for st in _statements(roles["BatchJobRole"]) for a in _actions(st)]
    # the container touches S3, and CloudWatch for its GPU metrics in its own namespace only (issue 25)
    assert not [a for a in job if not a.startswith("s3:") and a != "cloudwatch:PutMetricData"], job
    metrics = [st for st in _statements(roles["BatchJobRole"]) if "cloudwatch:PutMetricData" in _actions(st)]
    assert [st["Condition"] for st in metrics] == [{"StringEquals": {"cloudwatch:namespace": "IsaacLab/Training"}}]
    assert "s3:DeleteObject" not in job and "s3:PutObject" in job and "s3:GetObject" in job
    # the job's writes are confined to the staging, output and cache prefixes, and the asset mirror's (the one-off
    # mirror-assets job fills it), which is the parameter's prefix only
    writes = [st for st in _statements(roles["BatchJobRole"]) if "s3:PutObject" in _actions(st)]
    resources = [r for st in writes for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])]
    assert [r["Fn::Sub"] for r in resources] == [
        "${PipelineBucket.Arn}/staging/*", "${PipelineBucket.Arn}/${OutputPrefix}*", "${PipelineBucket.Arn}/cache/*",
        ["arn:${AWS::Partition}:s3:::${Path}*", {"Path": {"Fn::Select": [1, {"Fn::Split": ["s3://", {
            "Ref": "AssetMirrorUri"}]}]}}]]
    mwaa = {a for st in _statements(roles["MwaaExecutionRole"]) if st["Effect"] == "Allow" for a in _actions(st)}
    assert {"batch:SubmitJob", "batch:DescribeJobs", "batch:ListJobs", "batch:TerminateJob", "batch:TagResource",
            "logs:GetLogEvents", "s3:GetObject", "s3:PutObject", "states:SendTaskSuccess",
            "states:SendTaskFailure", "states:SendTaskHeartbeat", "airflow:PublishMetrics"} <= mwaa
    submit = next(st for st in _statements(roles["MwaaExecutionRole"]) if _actions(st) == ["batch:SubmitJob"])
    assert {"Ref": "JobQueue"} in submit["Resource"]  # these queues (Ref is a queue's ARN), not any queue
    # the VAMS token store: the callbacks' three calls, on the prefix only
    ssm = next(st for st in _statements(roles["MwaaExecutionRole"]) if st.get("Sid") == "VamsTokenStore")
    assert set(_actions(ssm)) == {"ssm:GetParameter", "ssm:PutParameter", "ssm:DeleteParameter"}
    assert ssm["Resource"]["Fn::Sub"].endswith(":parameter${VamsTokenPrefix}/*")
    trust = roles["MwaaExecutionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert set(trust["Service"]) == {"airflow.amazonaws.com", "airflow-env.amazonaws.com"}


def test_buckets_private_and_mwaa_source_versioned(template) -> None:
    resources = template["Resources"]
    for name in ("PipelineBucket", "MwaaSourceBucket"):
        block = resources[name]["Properties"]["PublicAccessBlockConfiguration"]
        assert all(block.values()), name
    source = resources["MwaaSourceBucket"]["Properties"]
    assert source["VersioningConfiguration"] == {"Status": "Enabled"}  # MWAA refuses unversioned buckets
    assert source["BucketName"]["Fn::Sub"].startswith("airflow-")  # MWAA's naming rule
    env = resources["MwaaEnvironment"]
    assert env["Condition"] == "CreateMwaa"
    assert (env["Properties"]["PluginsS3Path"], env["Properties"]["RequirementsS3Path"],
            env["Properties"]["DagS3Path"]) == ("plugins.zip", "requirements.txt", "dags")
    assert template["Parameters"]["MwaaAirflowVersion"]["Default"] == "3.3.1"


def test_root_volume_fits_the_image(template) -> None:
    resources = template["Resources"]
    data = resources["BatchLaunchTemplate"]["Properties"]["LaunchTemplateData"]
    [root] = data["BlockDeviceMappings"]
    assert root["DeviceName"] == "/dev/xvda"  # the ECS-optimized AL2023 AMIs' root device
    assert root["Ebs"]["VolumeSize"] == {"Ref": "RootVolumeGiB"} and root["Ebs"]["VolumeType"] == "gp3"
    # ~12 GB kit-less image (the Isaac Sim flavour ~20 GB) pulled and unpacked, plus the jobs' scratch
    assert template["Parameters"]["RootVolumeGiB"]["Default"] >= 100
    assert template["Parameters"]["RootVolumeGiB"]["MinValue"] >= 60
    assert data["MetadataOptions"]["HttpTokens"] == "required"
    for name in ("SpotComputeEnvironment", "OnDemandComputeEnvironment"):
        lt = resources[name]["Properties"]["ComputeResources"]["LaunchTemplate"]
        assert lt == {"LaunchTemplateId": {"Ref": "BatchLaunchTemplate"},
                      "Version": {"Fn::GetAtt": ["BatchLaunchTemplate", "LatestVersionNumber"]}}, name


def test_nccl_skips_the_ecs_veth_on_multinode_only(template) -> None:
    resources = template["Resources"]
    multinode = resources["MultiNodeTrainJobDefinition"]["Properties"]["NodeProperties"]["NodeRangeProperties"][0]
    env = {e["Name"]: e["Value"] for e in multinode["Container"]["Environment"]}
    # awsvpc: lo, ecs-eth0 (link-local, to the ECS agent) and the job's interface under its host name
    assert env["NCCL_SOCKET_IFNAME"].startswith("^") and {"lo", "ecs"} <= set(env["NCCL_SOCKET_IFNAME"][1:].split(","))
    assert "GLOO_SOCKET_IFNAME" not in env  # gloo takes exact names only, which differ per instance
    # single-node jobs use host networking, whose interface names differ again: NCCL's default choice is right
    single = resources["TrainJobDefinition"]["Properties"]["ContainerProperties"]
    assert "NCCL_SOCKET_IFNAME" not in json.dumps(single)


def test_attempts_fit_in_the_wait_steps_timeout(template) -> None:
    dag = (REPO / "dags" / "isaac_lab_training.py").read_text()
    wait = dag[dag.index('task_id="wait_for_job"'):]
    hours = int(re.search(r"execution_timeout=timedelta\(hours=(\d+)\)", wait).group(1))
    runtime = template["Parameters"]["MaxRuntimeSeconds"]
    # every attempt may run to its timeout, and the wait step kills the job when its own timeout passes
    assert RETRY_STRATEGY["attempts"] * runtime["MaxValue"] <= hours * 3600 - 3 * 3600, "no room to queue"
    assert RETRY_STRATEGY["attempts"] * runtime["Default"] <= hours * 3600 - 6 * 3600


def test_pinned_bundle_versions_never_expire(template) -> None:
    rules = template["Resources"]["MwaaSourceBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    for rule in rules:
        if "NoncurrentVersionExpiration" in rule or "ExpirationInDays" in rule:
            # plugins.zip and requirements.txt are pinned by object version; only dags/ may lose old versions
            assert rule.get("Prefix") == "dags/", rule


def test_job_containers_carry_the_region(template) -> None:
    # the runner's boto3 clients read AWS_DEFAULT_REGION (tests/unit/runner/test_aws_region.py); older ECS agents
    # set no AWS_REGION in the container
    for container in _job_containers(template):
        env = {e["Name"]: e["Value"] for e in container["Environment"]}
        assert env["AWS_DEFAULT_REGION"] == {"Ref": "AWS::Region"}


def test_job_role_trust_conditions_on_source_account(template) -> None:
    [statement] = template["Resources"]["BatchJobRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
    # aws:SourceArn may be missing when Batch's ECS assumes the role; aws:SourceAccount is always sent
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    assert "SourceArn" not in json.dumps(statement)


def test_mwaa_options_version_and_worker_bounds(template) -> None:
    props = template["Resources"]["MwaaEnvironment"]["Properties"]
    # MWAA sets core.load_examples itself; nothing else needs overriding
    assert "load_examples" not in json.dumps(props.get("AirflowConfigurationOptions", {}))
    params = template["Parameters"]
    builder = _bundle_builder()
    assert params["MwaaAirflowVersion"]["AllowedValues"] == list(builder.MWAA_AIRFLOW_VERSIONS)
    assert params["MwaaAirflowVersion"]["Default"] == builder.MWAA_AIRFLOW_VERSION
    # mw1.micro runs one worker; the others scale 1..25 (MWAA's limits per class)
    assert "mw1.micro" in params["MwaaEnvironmentClass"]["AllowedValues"]
    assert template["Conditions"]["MwaaMicro"] == {"Fn::Equals": [{"Ref": "MwaaEnvironmentClass"}, "mw1.micro"]}
    assert props["MaxWorkers"] == {"Fn::If": ["MwaaMicro", 1, {"Ref": "MwaaMaxWorkers"}]}
    assert props["MinWorkers"] == 1
    assert (params["MwaaMaxWorkers"]["MinValue"], params["MwaaMaxWorkers"]["MaxValue"]) == (1, 25)


def _bundle_builder() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_mwaa_bundle", REPO / "scripts" / "build_mwaa_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
