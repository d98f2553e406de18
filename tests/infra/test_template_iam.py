"""The CloudFormation templates tied to the code: deployed into a moto server, then every AWS call the code makes is
checked against the IAM role of the side that makes it, on the resource it touches.

1. ``infra/isaaclab-training.yaml`` is created by moto's CloudFormation (buckets, IAM roles and their resolved
   policies, log group, ECR repository, launch template, compute environments, job queues), the job definitions are
   registered from the template's own properties, and ``infra/vams-bridge.yaml`` creates the bridge Lambda and its
   role from a zip of ``vams_bridge/``. Where moto's CloudFormation falls short, the template handed to it is
   patched, and only there (``MOTO_GAPS``).
2. The DAG's Batch path runs on the stack's resources, named by the stack's outputs (``AirflowVariablesJson``, the
   Variables a deployment sets): submit single-node and multi-node jobs, a retried submit, the trigger, a cancel,
   the cost lookups; the runner's storage on the staging and asset buckets and its caches (kernel cache, wheels);
   convert and publish into the outputs and a VAMS bucket.
3. The moto/Stubber tests of the three sides run again with ``tests/aws_calls.py`` recording their calls
   (``SOURCE_TESTS``); their test buckets, queues and names are mapped to the deployment's (``deployment_names``).
4. Every call of the Airflow side must be allowed by ``MwaaExecutionRole``, of the runner by ``BatchJobRole``, of
   the bridge by the bridge's role: action and resource ARN, with ``s3:prefix`` conditions, and a read that got
   404 also needs ``s3:ListBucket`` (without it S3 answers 403, which the code reads as an error, not "missing").
"""

from __future__ import annotations

import ast
import copy
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import decode
from vams_aws import moto_server

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "infra" / "isaaclab-training.yaml"
BRIDGE = REPO / "infra" / "vams-bridge.yaml"
ACCOUNT, REGION = "123456789012", "us-east-1"
VAMS_BUCKET = f"vams-assets-{ACCOUNT}"
VAMS_BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/vams-prod-orchestration"  # test_vams_callbacks' bus
JOB = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
# the tests whose AWS calls are recorded and checked (moto server, mock_aws or Stubber; each well under a minute)
SOURCE_TESTS = [
    "tests/integration/test_batch_moto.py", "tests/integration/test_vams_callbacks.py",
    "tests/integration/test_vams_bridge.py", "tests/unit/backends/test_batch_backend.py", "tests/unit/test_publish.py",
    "tests/unit/runner/test_sync.py",
]
# moto's CloudFormation, and how the template handed to it is patched (each is a moto limitation, not AWS's):
MOTO_GAPS = {
    "AWS::Batch::ComputeEnvironment": "ServiceRole is required (AWS uses the Batch service-linked role when it is "
                                      "absent), and a CommaDelimitedList Ref is taken as a string of characters",
    "AWS::Batch::JobDefinition": "registered as type container under the logical id whatever the template says: "
                                 "registered here through the Batch API from the template's properties instead",
    "AWS::S3::BucketPolicy": "not supported (skipped; it only denies non-TLS access)",
}
# which role each side's code runs as
ROLE_OF_SIDE = {"airflow": "MwaaExecutionRole", "runner": "BatchJobRole", "bridge": "BridgeRole"}


# ---- deploying ---------------------------------------------------------------------------------------------------

@dataclass
class Deployed:
    """What the stacks created, as a deployment sees it."""

    outputs: dict[str, str]
    params: dict[str, str]
    physical: dict[str, str]
    policies: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # logical role id -> statements
    job_definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    bridge: dict[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> dict[str, str]:
        return json.loads(self.outputs["AirflowVariablesJson"])

    @property
    def pipeline_bucket(self) -> str:
        return self.physical["PipelineBucket"]


def _template(path: Path) -> dict[str, Any]:
    tpl, matches = decode(str(path))
    assert not matches, matches
    return json.loads(json.dumps(tpl, default=str))  # plain dicts and strings (cfn-lint's nodes carry marks)


def _sub(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, f"unresolved: {text}"
    return text


def _resolve(node: Any, values: dict[str, Any]) -> Any:
    """Ref, Fn::GetAtt and Fn::Sub against ``values`` (``Name`` and ``Name.Attribute`` keys)."""
    if isinstance(node, list):
        return [_resolve(v, values) for v in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return values[node["Ref"]]
    if set(node) == {"Fn::GetAtt"}:
        return values[".".join(node["Fn::GetAtt"])]
    if set(node) == {"Fn::Sub"}:
        return _sub(node["Fn::Sub"], {k: str(v) for k, v in values.items()})
    return {k: _resolve(v, values) for k, v in node.items()}


def _camel(obj: Any) -> Any:
    """CloudFormation's PascalCase property names → the API's camelCase (log driver options stay as they are)."""
    if isinstance(obj, dict):
        return {(k if "-" in k else k[0].lower() + k[1:]): _camel(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_camel(v) for v in obj]
    return obj


def _typed(value: Any, shape: Any) -> Any:
    """Give resolved parameter values the API's types (CloudFormation converts them per property type)."""
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: _typed(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_typed(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _typed(v, shape.value) for k, v in value.items()}
    if shape.type_name in ("integer", "long") and isinstance(value, str):
        return int(value)
    if shape.type_name == "boolean" and isinstance(value, str):
        return value.lower() == "true"
    if shape.type_name == "string" and isinstance(value, int | float):
        return str(value)
    return value


def _statements(document: Any) -> list[dict[str, Any]]:
    doc = document if isinstance(document, dict) else (
        json.loads(document) if document.lstrip().startswith('{"') else ast.literal_eval(document))
    statements = doc["Statement"]
    return [s for s in ([statements] if isinstance(statements, dict) else statements) if s]  # moto keeps NoValue


def _role_policies(iam: Any, role_name: str) -> list[dict[str, Any]]:
    out = []
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        out += _statements(iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"])
    return out


def _stack_resources(cfn: Any, name: str) -> dict[str, str]:
    return {r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cfn.list_stack_resources(StackName=name)["StackResourceSummaries"]}


def _create(cfn: Any, name: str, template: dict[str, Any], params: dict[str, str]) -> dict[str, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # moto: "Tried to parse AWS::S3::BucketPolicy ..."
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
                         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def deploy_main(params: dict[str, str]) -> Deployed:
    """Create the main stack in moto from the template, its job definitions through the Batch API."""
    kw = {"region_name": REGION}
    iam, cfn, batch = boto3.client("iam", **kw), boto3.client("cloudformation", **kw), boto3.client("batch", **kw)
    # the Batch service-linked role exists in every account that has used Batch (docs/deploy.md creates it)
    slr = iam.create_role(RoleName="AWSServiceRoleForBatch", Path="/aws-service-role/batch.amazonaws.com/",
                          AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    tpl = _template(MAIN)
    values = {name: str(p.get("Default", "")) for name, p in tpl["Parameters"].items()} | params
    for_moto = copy.deepcopy(tpl)
    job_definitions = {n: for_moto["Resources"].pop(n) for n, r in tpl["Resources"].items()
                       if r["Type"] == "AWS::Batch::JobDefinition"}
    for resource in for_moto["Resources"].values():
        if resource["Type"] == "AWS::Batch::ComputeEnvironment":
            compute = resource["Properties"]["ComputeResources"]
            param = compute["InstanceTypes"]["Ref"]
            compute["InstanceTypes"] = [t if "." in t else f"{t}.xlarge" for t in values[param].split(",")]
            resource["Properties"]["ServiceRole"] = slr
    outputs = _create(cfn, "isaaclab", for_moto, params)
    physical = _stack_resources(cfn, "isaaclab")
    deployed = Deployed(outputs=outputs, params=values, physical=physical)
    for role in ("MwaaExecutionRole", "BatchJobRole"):
        deployed.policies[role] = _role_policies(iam, physical[role])
    # the job definitions, as CloudFormation would register them
    refs = {**values, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
            "JobLogGroup": physical["JobLogGroup"],
            "TaskImageRepository.RepositoryUri": outputs["TaskImageRepositoryUri"],
            "BatchJobRole.Arn": iam.get_role(RoleName=physical["BatchJobRole"])["Role"]["Arn"]}
    for logical, resource in job_definitions.items():
        shape = batch.meta.service_model.operation_model("RegisterJobDefinition").input_shape
        props = _typed(_camel(_resolve(resource["Properties"], refs)), shape)
        name, kind = props.pop("jobDefinitionName"), props.pop("type")
        arn = batch.register_job_definition(jobDefinitionName=name, type=kind, **props)["jobDefinitionArn"]
        deployed.job_definitions[logical] = {"name": name, "type": kind, "arn": arn, **props}
    return deployed


def deploy_bridge(main: Deployed) -> None:
    """Upload a zip of vams_bridge/ (as vams_bridge/README.md builds it) and create the bridge stack from it."""
    kw = {"region_name": REGION}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in sorted((REPO / "vams_bridge" / "vams_bridge").glob("*.py")):
            zf.write(path, f"vams_bridge/{path.name}")
    source = main.outputs["MwaaSourceBucketName"]
    boto3.client("s3", **kw).put_object(Bucket=source, Key="lambda/vams_bridge.zip", Body=buf.getvalue())
    cfn, iam = boto3.client("cloudformation", **kw), boto3.client("iam", **kw)
    outputs = _create(cfn, "isaaclab-vams-bridge", _template(BRIDGE), {
        "CodeS3Bucket": source, "MwaaEnvironmentName": main.outputs["MwaaEnvironmentName"],
        "TokenParameterPrefix": main.outputs["IsaaclabVamsTokenPrefix"], "VamsBucketNames": VAMS_BUCKET})
    physical = _stack_resources(cfn, "isaaclab-vams-bridge")
    main.policies["BridgeRole"] = _role_policies(iam, physical["BridgeRole"])
    function = boto3.client("lambda", **kw).get_function(FunctionName=outputs["BridgeFunctionName"])
    main.bridge = {"outputs": outputs, "configuration": function["Configuration"]}


# ---- IAM ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One IAM authorization a call needs."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


def _condition_ok(conditions: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, pairs in conditions.items():
        for key, wanted in pairs.items():
            wanted = [wanted] if isinstance(wanted, str) else wanted
            value = context.get(key)
            if value is None:
                if operator.endswith("IfExists"):
                    continue
                return False
            op = operator.removesuffix("IfExists")
            if op in ("StringLike", "ArnLike"):
                ok = any(fnmatchcase(value, w) for w in wanted)
            elif op in ("StringEquals", "ArnEquals", "Bool"):
                ok = value in wanted
            else:
                raise AssertionError(f"condition operator {operator} is not modelled here")
            if not ok:
                return False
    return True


def _matches(statement: dict[str, Any], request: Request) -> bool:
    listify = lambda v: [v] if isinstance(v, str) else list(v or [])  # noqa: E731
    if not any(fnmatchcase(request.action.lower(), a.lower()) for a in listify(statement.get("Action"))):
        return False
    if "Resource" in statement and not any(fnmatchcase(request.resource, r) for r in listify(statement["Resource"])):
        return False
    if "NotResource" in statement and any(fnmatchcase(request.resource, r) for r in listify(statement["NotResource"])):
        return False
    return _condition_ok(statement.get("Condition") or {}, dict(request.context))


def allowed(statements: list[dict[str, Any]], request: Request) -> bool:
    """IAM's evaluation for one identity policy set: an explicit deny wins, else an allow is needed."""
    if any(_matches(s, request) for s in statements if s["Effect"] == "Deny"):
        return False
    return any(_matches(s, request) for s in statements if s["Effect"] == "Allow")


def _s3(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def _batch(kind: str, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{name}"


S3_OBJECT_ACTIONS = {
    "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
}
RESOURCELESS = {("batch", "DescribeJobs"), ("batch", "ListJobs"), ("batch", "DescribeJobQueues"),
                ("batch", "DescribeJobDefinitions"), ("batch", "DescribeComputeEnvironments"),
                ("states", "SendTaskSuccess"), ("states", "SendTaskFailure"), ("states", "SendTaskHeartbeat")}


def requests_of(call: dict[str, Any]) -> list[Request] | list[list[Request]]:
    """The authorizations one recorded call needs (a list of alternatives for InvokeRestApi's Airflow roles)."""
    op, prefix, p = call["operation"], call["signing"], call["params"]
    if prefix == "s3":
        if op in S3_OBJECT_ACTIONS:
            needed = [Request(S3_OBJECT_ACTIONS[op], _s3(p["Bucket"], p["Key"]))]
            if op in ("GetObject", "HeadObject") and call.get("status") == 404:  # "missing" needs ListBucket
                needed.append(Request("s3:ListBucket", _s3(p["Bucket"]), (("s3:prefix", p["Key"]),)))
            return needed
        if op == "CopyObject":
            src = p["CopySource"] if isinstance(p["CopySource"], dict) else dict(zip(
                ("Bucket", "Key"), p["CopySource"].split("/", 1), strict=True))
            return [Request("s3:PutObject", _s3(p["Bucket"], p["Key"])),
                    Request("s3:GetObject", _s3(src["Bucket"], src["Key"]))]
        if op in ("ListObjectsV2", "ListObjects"):
            return [Request("s3:ListBucket", _s3(p["Bucket"]), (("s3:prefix", p.get("Prefix", "")),))]
        if op == "DeleteObjects":
            return [Request("s3:DeleteObject", _s3(p["Bucket"], o["Key"])) for o in p["Delete"]["Objects"]]
    if prefix == "batch":
        if (prefix, op) in RESOURCELESS:
            return [Request(f"batch:{op}", "*")]
        if op == "SubmitJob":
            definition = p["jobDefinition"]
            revisions = [definition] if ":" in definition.split("/")[-1] else [definition, f"{definition}:1"]
            needed = [Request("batch:SubmitJob", _batch("job-queue", p["jobQueue"]))]
            needed += [Request("batch:SubmitJob", _batch("job-definition", d)) for d in revisions]
            if p.get("tags"):  # tagging on create is authorized as TagResource on the new job
                needed.append(Request("batch:TagResource", _batch("job", "a-new-job-id")))
            return needed
        if op == "TerminateJob":
            return [Request("batch:TerminateJob", _batch("job", p["jobId"]))]
    if prefix == "ecs" and op == "DescribeContainerInstances":
        return [Request("ecs:DescribeContainerInstances", arn) for arn in p["containerInstances"]]
    if prefix == "logs" and op == "GetLogEvents":
        return [Request("logs:GetLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{p['logGroupName']}"
                                             f":log-stream:{p['logStreamName']}")]
    if prefix == "ssm" and op in ("GetParameter", "PutParameter", "DeleteParameter"):
        return [Request(f"ssm:{op}", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/{p['Name'].lstrip('/')}")]
    if (prefix, op) in RESOURCELESS:
        return [Request(f"{prefix}:{op}", "*")]
    if prefix == "events" and op == "PutEvents":  # authorized on each entry's bus (an ARN, or a name in-account)
        return [Request("events:PutEvents", e["EventBusName"] if e["EventBusName"].startswith("arn:") else
                        f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{e['EventBusName']}") for e in p["Entries"]]
    if prefix == "airflow" and op == "InvokeRestApi":  # authorized on the Airflow role the call runs as
        return [[Request("airflow:InvokeRestApi", f"arn:aws:airflow:{REGION}:{ACCOUNT}:role/{p['Name']}/{role}")
                 for role in ("User", "Op", "Admin")]]
    raise AssertionError(f"no IAM mapping for {prefix}:{op} ({call['test']}); add it to requests_of()")


# ---- test names → the deployment's --------------------------------------------------------------------------

def deployment_names(d: Deployed) -> dict[str, dict[str, Any]]:
    """What each test-local name plays in a deployment (``None`` keeps the name: it is the deployment's own)."""
    return {
        # test bucket -> (deployment bucket, the key prefix it stands for)
        "buckets": {"stage": (d.pipeline_bucket, "staging/"), "out": (d.pipeline_bucket, "outputs/"),
                    "vams-assets": (VAMS_BUCKET, ""), d.pipeline_bucket: None, VAMS_BUCKET: None,
                    # VAMS 2.6's run I/O bucket (manifests, configurations, a step's outputs); -gone: never created
                    "vams-run-io": (VAMS_BUCKET, ""), "vams-run-io-gone": (VAMS_BUCKET, "")},
        "queues": {"gpu-queue": d.outputs["IsaaclabBatchJobQueue"],
                   "ondemand-queue": d.outputs["IsaaclabBatchOnDemandJobQueue"],
                   d.outputs["IsaaclabBatchJobQueue"]: None, d.outputs["IsaaclabBatchOnDemandJobQueue"]: None},
        "definitions": {"isaaclab-single": d.outputs["IsaaclabBatchJobDefinition"],
                        "isaaclab-mnp": d.outputs["IsaaclabBatchMultinodeJobDefinition"],
                        d.outputs["IsaaclabBatchJobDefinition"]: None,
                        d.outputs["IsaaclabBatchMultinodeJobDefinition"]: None},
        # moto writes every job's log to Batch's default group; a deployment's job definitions name the stack's
        "log_groups": {"/aws/batch/job": d.outputs["JobLogGroupName"], d.outputs["JobLogGroupName"]: None},
        "environments": {"vams-env": d.outputs["MwaaEnvironmentName"], d.outputs["MwaaEnvironmentName"]: None},
    }


def deployed_call(call: dict[str, Any], names: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The call with the test's names replaced by the deployment's; unknown names fail with a hint."""
    call = copy.deepcopy(call)
    p = call["params"]

    def lookup(table: str, name: str) -> Any:
        assert name in names[table], (f"{call['test']}: {call['operation']} on {table[:-1]} {name!r}, which plays "
                                      f"no known part of a deployment; map it in deployment_names()")
        return names[table][name] or name

    def bucket_key(holder: dict[str, Any], key_field: str) -> None:
        mapped = lookup("buckets", holder["Bucket"])
        if isinstance(mapped, tuple):
            holder["Bucket"], prefix = mapped
            if key_field in holder:
                holder[key_field] = prefix + holder[key_field]
            elif key_field == "Prefix":
                holder["Prefix"] = prefix

    if "Bucket" in p:
        bucket_key(p, "Prefix" if call["operation"].startswith("ListObjects") else "Key")
    if isinstance(p.get("CopySource"), dict):
        bucket_key(p["CopySource"], "Key")
    if "jobQueue" in p:
        p["jobQueue"] = lookup("queues", p["jobQueue"])
    if "jobDefinition" in p:
        p["jobDefinition"] = lookup("definitions", p["jobDefinition"])
    if "logGroupName" in p:
        p["logGroupName"] = lookup("log_groups", p["logGroupName"])
    if call["signing"] == "airflow":
        p["Name"] = lookup("environments", p["Name"])
    return call


# ---- fixtures ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    with moto_server() as url, pytest.MonkeyPatch.context() as mp:
        urllib.request.urlopen(urllib.request.Request(url + "/moto-api/config", method="POST",
                                                      data=json.dumps({"batch": {"use_docker": False}}).encode()))
        mp.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": REGION}}))
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        yield url


@pytest.fixture(scope="module")
def stack(aws: str) -> Deployed:
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] == vpc][:2]
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=VAMS_BUCKET)  # VAMS's own, not the stack's
    deployed = deploy_main({"VpcId": vpc, "SubnetIds": ",".join(subnets), "AssetBucketName": VAMS_BUCKET,
                            "VamsBucketNames": VAMS_BUCKET, "VamsOrchestrationBusArn": VAMS_BUS})
    deploy_bridge(deployed)
    return deployed


@pytest.fixture(scope="module")
def scenario(stack: Deployed, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The DAG's Batch path, the runner's storage and convert/publish on the stack's resources, recorded."""
    from aws_calls import recording

    tmp = tmp_path_factory.mktemp("stack-scenario")
    results: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp, recording("test_template_iam.py::scenario") as calls:
        for key, value in stack.variables.items():  # the Variables as a deployment sets them
            mp.setenv(f"AIRFLOW_VAR_{key.upper()}", value)
        mp.setenv("AIRFLOW_VAR_ISAACLAB_POLL_INTERVAL_S", "0.2")
        results.update(_run_batch_path(tmp))
        results.update(_run_storage_paths(stack, tmp))
    results["calls"] = calls
    return results


def _run_batch_path(tmp: Path) -> dict[str, Any]:
    import asyncio

    from isaaclab_pipeline.backends import JobState
    from isaaclab_pipeline.backends.batch import BatchBackend
    from isaaclab_pipeline.jobspec import JobSpec
    from isaaclab_pipeline.settings import PipelineSettings
    from isaaclab_pipeline.triggers import IsaacLabJobTrigger

    settings = PipelineSettings.load()
    out: dict[str, Any] = {"settings": settings, "jobs": {}}
    for nodes in (1, 2):
        spec = JobSpec(job_id=f"{JOB[:-1]}{nodes}", mode="train", task="Isaac-Custom-Cartpole-Direct",
                       rl_library="rsl_rl", seed=1, num_envs=64, num_nodes=nodes,
                       staging_uri=f"{settings.staging_uri}/{JOB[:-1]}{nodes}")
        backend = BatchBackend(settings, "manual__stack")
        handle = backend.submit(spec)
        for _ in range(100):
            state = backend.status(handle).state
            if state.done:
                break
            time.sleep(0.1)
        out["jobs"][nodes] = {"handle": handle, "state": state,
                              "again": BatchBackend(settings, "manual__stack").submit(spec).external_id}
    # the deferred wait's trigger: one poll (DescribeJobs, progress.json that is not there yet)
    handle = out["jobs"][1]["handle"]
    poller = BatchBackend(settings).poller(handle)
    trigger = IsaacLabJobTrigger(poller=poller.name, poller_kwargs=poller.kwargs, staging_uri=handle.staging_uri,
                                 poll_interval_s=0.1)

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    out["event"] = asyncio.run(first())
    BatchBackend(settings).cancel(handle, "stack test")
    # a run's cost: the instance type of the job's container instance, spot or on-demand from its environment
    from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
    from airflow.providers.amazon.aws.hooks.ecs import EcsHook
    from isaaclab_pipeline.cost import InstanceFacts

    facts = InstanceFacts(EcsHook(aws_conn_id="aws_default", region_name=REGION).conn,
                          BatchClientHook(aws_conn_id="aws_default", region_name=REGION).client)
    environments = boto3.client("batch", region_name=REGION).describe_compute_environments()["computeEnvironments"]
    environment = next(e["computeEnvironmentName"] for e in environments if e["computeResources"]["type"] == "SPOT")
    instance = f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{environment}_Batch_0a1b2c/0123456789abcdef"
    out["cost"] = {"type": facts.instance_type(instance), "capacity": facts.capacity(instance), "notes": facts.notes}
    out["succeeded"] = JobState.SUCCEEDED
    return out


def _run_storage_paths(d: Deployed, tmp: Path) -> dict[str, Any]:
    from isaaclab_pipeline.publish import publish_outputs
    from isaaclab_pipeline.staged_metrics import convert_staged_run
    from isaaclab_runner import storage as runner_storage

    staging = f"{d.variables['isaaclab_staging_uri']}/{JOB}"
    asset = f"s3://{VAMS_BUCKET}/cartpole/custom_cartpole.tar.gz"
    boto3.client("s3", region_name=REGION).put_object(Bucket=VAMS_BUCKET, Key="cartpole/custom_cartpole.tar.gz",
                                                      Body=b"package")
    # the runner in its container: fetch the package, stage progress, the run folder and list for a resume point
    runner_storage._s3.cache_clear()  # a client cached by an earlier test would talk to another moto
    runner_storage.download(asset, tmp / "inputs" / "custom_cartpole.tar.gz")
    run = tmp / "run"
    run.mkdir()
    events = next((REPO / "tests" / "fixtures" / "isaaclab_events").iterdir())
    (run / events.name).write_bytes(events.read_bytes())
    (run / "model_1.pt").write_bytes(b"weights")
    runner_storage.write_text(f"{staging}/progress.json", json.dumps({"state": "running"}), tmp / "progress.json")
    runner_storage.upload_tree(run, f"{staging}/run")
    listed = runner_storage.list_uris(f"{staging}/checkpoints")
    # its caches under isaaclab_cache_uri: a miss, a store, a hit (kernel cache and built wheels)
    from isaaclab_runner.caches import KernelCache, WheelCache

    cache_uri = d.variables["isaaclab_cache_uri"]
    kernel = KernelCache(cache_uri, tmp / "kernel-scratch", "1.17.0", local_dir=tmp / "warp" / "1.17.0", key="test")
    caches = {"kernel_miss": kernel.restore()}
    (kernel.local_dir / "wp_test_module").mkdir(parents=True)
    (kernel.local_dir / "wp_test_module" / "kernel.cubin").write_bytes(b"cubin")
    caches["kernel_save"] = kernel.save()
    fresh = KernelCache(cache_uri, tmp / "kernel-scratch2", "1.17.0", local_dir=tmp / "warp2" / "1.17.0", key="test")
    caches["kernel_hit"] = fresh.restore()
    wheels = WheelCache(cache_uri, tmp / "wheel-scratch")
    package = tmp / "inputs" / "custom_cartpole.tar.gz"
    caches["wheel_miss"] = wheels.get(package)
    (tmp / "custom_cartpole-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    caches["wheel_put"] = wheels.put(package, tmp / "custom_cartpole-0.1.0-py3-none-any.whl")
    caches["wheel_hit"] = wheels.get(package)
    runner_storage._s3.cache_clear()
    # the Airflow side: convert, then publish to the stack's outputs and into a VAMS bucket
    converted = convert_staged_run(staging)
    conf = {"trainingConfig": {"task": "Isaac-Custom-Cartpole-Direct"}}
    published = publish_outputs(staging, d.outputs["OutputS3Path"], conf, JOB)
    vams = publish_outputs(staging, f"s3://{VAMS_BUCKET}/pipelines/run-1/output/", conf, JOB)
    return {"listed": listed, "converted": converted, "published": published, "vams_published": vams,
            "caches": caches}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The source tests, run again with their AWS calls recorded (tests/aws_calls.py)."""
    out = tmp_path_factory.mktemp("aws-calls") / "calls.json"
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests"), str(REPO / "plugins"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "aws_calls",
                           "--aws-calls-out", str(out), *SOURCE_TESTS], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    # a failing source test is reported by its own run; its calls up to the failure are still checked here
    assert proc.returncode in (0, 1) and out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())


# ---- tests -------------------------------------------------------------------------------------------------------

def test_stack_outputs_are_the_variables_and_name_its_resources(stack: Deployed) -> None:
    from isaaclab_pipeline.settings import PipelineSettings

    variables = stack.variables
    batch = boto3.client("batch", region_name=REGION)
    queues = {q["jobQueueArn"]: q for q in batch.describe_job_queues()["jobQueues"]}
    assert variables["isaaclab_batch_job_queue"] in queues
    assert variables["isaaclab_batch_multinode_job_queue"] in queues
    definitions = {d["jobDefinitionName"]: d for d in batch.describe_job_definitions(status="ACTIVE")[
        "jobDefinitions"]}
    assert definitions[variables["isaaclab_batch_job_definition"]]["type"] == "container"
    assert definitions[variables["isaaclab_batch_multinode_job_definition"]]["type"] == "multinode"
    bucket, _, prefix = variables["isaaclab_staging_uri"].removeprefix("s3://").partition("/")
    assert bucket == stack.pipeline_bucket and prefix == "staging"
    # confs may name the asset bucket (VAMS's here), the outputs and VAMS's buckets, nothing else
    assert variables["isaaclab_allowed_uri_prefixes"].split() == [
        f"s3://{VAMS_BUCKET}/", stack.outputs["OutputS3Path"], f"s3://{VAMS_BUCKET}/"]
    assert boto3.client("logs", region_name=REGION).describe_log_groups(
        logGroupNamePrefix=stack.outputs["JobLogGroupName"])["logGroups"]
    # the settings loader takes them as they are
    with pytest.MonkeyPatch.context() as mp:
        for key, value in variables.items():
            mp.setenv(f"AIRFLOW_VAR_{key.upper()}", value)
        settings = PipelineSettings.load()
    assert settings.compute_backend == "batch" and settings.batch_max_runtime_s == int(
        stack.params["MaxRuntimeSeconds"])
    assert settings.allowed_uri_prefixes and settings.cache_uri == f"s3://{stack.pipeline_bucket}/cache"
    assert settings.default_output_uri == stack.outputs["OutputS3Path"]


def test_job_definitions_carry_the_role_image_logs_and_nccl(stack: Deployed) -> None:
    single = stack.job_definitions["TrainJobDefinition"]
    multi = stack.job_definitions["MultiNodeTrainJobDefinition"]
    container = multi["nodeProperties"]["nodeRangeProperties"][0]["container"]
    for c in (single["containerProperties"], container):
        assert c["jobRoleArn"].endswith(stack.physical["BatchJobRole"])
        assert c["image"] == f"{stack.outputs['TaskImageRepositoryUri']}:{stack.params['ImageTag']}"
        assert c["logConfiguration"]["options"]["awslogs-group"] == stack.outputs["JobLogGroupName"]
    assert {e["name"]: e["value"] for e in container["environment"]}["NCCL_SOCKET_IFNAME"] == "^lo,docker,ecs"
    # the compute environments launch from the stack's launch template (root volume)
    batch = boto3.client("batch", region_name=REGION)
    environments = batch.describe_compute_environments()["computeEnvironments"]
    assert len(environments) == 2, environments  # Spot and on-demand
    for env in environments:
        lt = env["computeResources"].get("launchTemplate") or {}
        assert lt.get("launchTemplateId") == stack.physical["BatchLaunchTemplate"], env["computeEnvironmentName"]


def test_batch_path_runs_on_the_stacks_resources(scenario: dict[str, Any], stack: Deployed) -> None:
    assert scenario["jobs"]
    for nodes, job in scenario["jobs"].items():
        assert job["state"] == scenario["succeeded"], nodes
        assert job["again"] == job["handle"].external_id  # a retried submit reattaches
    described = boto3.client("batch", region_name=REGION).describe_jobs(
        jobs=[j["handle"].external_id for j in scenario["jobs"].values()])["jobs"]
    queues = {j["jobQueue"] for j in described}
    assert queues <= {stack.outputs["IsaaclabBatchJobQueue"], stack.outputs["IsaaclabBatchMultinodeJobQueue"]}
    assert {j["jobDefinition"].split("/")[-1].split(":")[0] for j in described} == {
        stack.outputs["IsaaclabBatchJobDefinition"], stack.outputs["IsaaclabBatchMultinodeJobDefinition"]}
    assert scenario["event"]["status"] == "success"
    # moto knows no container instance: the lookup is noted, the compute environment's type is found
    assert scenario["cost"]["capacity"] == "spot" and scenario["cost"]["type"] is None


def test_storage_paths_run_on_the_stacks_buckets(scenario: dict[str, Any], stack: Deployed) -> None:
    assert scenario["converted"]["eventFiles"] == 1 and scenario["converted"]["scalars"] > 0
    s3 = boto3.client("s3", region_name=REGION)
    outputs = stack.outputs["OutputS3Path"].removeprefix(f"s3://{stack.pipeline_bucket}/")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=stack.pipeline_bucket, Prefix=outputs)["Contents"]]
    assert f"{outputs}{JOB}/manifest.json" in keys and f"{outputs}{JOB}/metrics.csv" in keys
    vams = [o["Key"] for o in s3.list_objects_v2(Bucket=VAMS_BUCKET, Prefix="pipelines/")["Contents"]]
    assert f"pipelines/run-1/output/{JOB}/manifest.json" in vams
    caches = scenario["caches"]
    assert caches["kernel_miss"].startswith("kernel cache: none at") and "saved 1 kernel modules" in caches[
        "kernel_save"] and "restored 1 kernel modules" in caches["kernel_hit"]
    assert caches["wheel_miss"] is None and caches["wheel_put"] and caches["wheel_hit"] is not None
    # each call is told to the side whose code made it, worker threads (s3transfer, to_thread) included
    made = {(c["side"], c["operation"], c["params"].get("Bucket")) for c in scenario["calls"]}
    assert {("runner", "GetObject", VAMS_BUCKET), ("runner", "PutObject", stack.pipeline_bucket),
            ("runner", "HeadObject", stack.pipeline_bucket), ("airflow", "DescribeContainerInstances", None),
            ("airflow", "DescribeComputeEnvironments", None),
            ("runner", "ListObjectsV2", stack.pipeline_bucket), ("airflow", "PutObject", VAMS_BUCKET),
            ("airflow", "DescribeJobs", None), ("airflow", "SubmitJob", None)} <= made, sorted(made, key=str)
    staged_run = [c for c in scenario["calls"] if c["operation"] == "PutObject" and "/run/" in c["params"]["Key"]]
    assert staged_run and {c["side"] for c in staged_run} == {"runner"}


def test_bridge_stack_deploys_the_handler_with_its_settings(stack: Deployed) -> None:
    sys.path.insert(0, str(REPO / "vams_bridge"))
    import vams_bridge.handler as handler

    config = stack.bridge["configuration"]
    assert config["FunctionName"].startswith("vams-") and config["Handler"] == "vams_bridge.handler.lambda_handler"
    assert config["Timeout"] >= handler.worst_case_seconds()
    env = config["Environment"]["Variables"]
    assert env["MWAA_ENV_NAME"] == stack.outputs["MwaaEnvironmentName"]
    assert env["TOKEN_PARAMETER_PREFIX"] == stack.variables["isaaclab_vams_token_prefix"]


def test_every_aws_call_is_allowed_by_its_sides_role(stack: Deployed, scenario: dict[str, Any],
                                                     recorded: list[dict[str, Any]]) -> None:
    names = deployment_names(stack)
    calls = [c for c in recorded + scenario["calls"] if c["side"] != "test"]
    assert not [c for c in calls if c["side"] == "unknown"], "calls no side could be told for"
    seen = {(c["side"], c["signing"], c["operation"]) for c in calls}
    # the record is not silently empty: each side's core calls were seen
    assert {("airflow", "batch", "SubmitJob"), ("airflow", "ssm", "GetParameter"), ("runner", "s3", "PutObject"),
            ("bridge", "airflow", "InvokeRestApi"), ("bridge", "ssm", "PutParameter")} <= seen, sorted(seen)
    denied: dict[str, set[str]] = {}
    for call in calls:
        call = deployed_call(call, names)
        statements = stack.policies[ROLE_OF_SIDE[call["side"]]]
        for needed in requests_of(call):
            alternatives = needed if isinstance(needed, list) else [needed]
            if not any(allowed(statements, r) for r in alternatives):
                where = call["test"].split("::")[0].rsplit("/", 1)[-1]
                denied.setdefault(f"{ROLE_OF_SIDE[call['side']]}: {alternatives[0].action}", set()).add(
                    f"{alternatives[0].resource} {dict(alternatives[0].context) or ''} ({where})")
    assert not denied, "calls the template's roles would refuse:\n" + "\n".join(
        f"{k}\n    " + "\n    ".join(sorted(v)[:5]) for k, v in sorted(denied.items()))


def test_the_checker_refuses_what_iam_would(stack: Deployed) -> None:
    """The evaluator itself: a few calls the roles must not allow."""
    job = stack.policies["BatchJobRole"]
    mwaa = stack.policies["MwaaExecutionRole"]
    bucket = stack.pipeline_bucket
    assert not allowed(job, Request("s3:DeleteObject", _s3(bucket, "staging/x")))
    assert not allowed(job, Request("s3:PutObject", _s3(bucket, "assets/x")))
    assert not allowed(job, Request("s3:ListBucket", _s3(bucket), (("s3:prefix", "other/"),)))
    assert allowed(job, Request("s3:ListBucket", _s3(bucket), (("s3:prefix", "staging/j/run"),)))
    assert not allowed(mwaa, Request("batch:SubmitJob", _batch("job-queue", "someone-elses")))
    assert not allowed(mwaa, Request("ssm:GetParameter", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/other/x"))
    assert not allowed(mwaa, Request("s3:PutObject", _s3("another-bucket", "x")))
    assert allowed(mwaa, Request("s3:PutObject", _s3(VAMS_BUCKET, "pipelines/x")))
    assert not allowed(stack.policies["BridgeRole"], Request("airflow:InvokeRestApi", (
        f"arn:aws:airflow:{REGION}:{ACCOUNT}:role/{stack.outputs['MwaaEnvironmentName']}/Admin")))
