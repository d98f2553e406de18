"""infra/vams-bridge.yaml and infra/network.yaml: cfn-lint clean and in step with the code they deploy.

The bridge: the function's handler, environment and timeout are the ones vams_bridge reads and needs; its role
uses the IAM action ``airflow:InvokeRestApi`` (``mwaa:`` is only the API's name). The network: private subnets in
two Availability Zones, their default route through NAT and S3 through a gateway endpoint.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "infra" / "vams-bridge.yaml"
NETWORK = REPO / "infra" / "network.yaml"
MAIN = REPO / "infra" / "isaaclab-training.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
sys.path.insert(0, str(REPO / "vams_bridge"))
import vams_bridge.handler as handler  # noqa: E402
from vams_bridge.token_store import DEFAULT_PREFIX  # noqa: E402


def _load(path: Path) -> dict[str, Any]:
    tpl, matches = decode(str(path))
    assert not matches, matches
    return tpl


@pytest.mark.parametrize("path", [BRIDGE, NETWORK], ids=lambda p: p.name)
def test_cfn_lint_clean(path: Path) -> None:
    proc = subprocess.run([str(CFN_LINT), str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bridge_function_runs_the_handler_with_its_environment() -> None:
    tpl = _load(BRIDGE)
    fn = tpl["Resources"]["BridgeFunction"]["Properties"]
    module, func = fn["Handler"].rsplit(".", 1)
    assert (REPO / "vams_bridge" / (module.replace(".", "/") + ".py")).is_file() and callable(getattr(handler, func))
    assert fn["Runtime"] == "python3.12"
    assert fn["FunctionName"]["Fn::Sub"].startswith("vams-")  # VAMS invokes only functions named vams*
    # every variable the function gets is one the handler reads
    source = (REPO / "vams_bridge" / "vams_bridge" / "handler.py").read_text()
    assert fn["Environment"]["Variables"]
    for name in fn["Environment"]["Variables"]:
        assert f'"{name}"' in source, name
    assert tpl["Parameters"]["TokenParameterPrefix"]["Default"] == DEFAULT_PREFIX
    assert tpl["Parameters"]["TokenParameterPrefix"]["Default"] == _load(MAIN)["Parameters"]["VamsTokenPrefix"][
        "Default"]


def test_bridge_timeout_outlasts_every_bounded_call() -> None:
    fn = _load(BRIDGE)["Resources"]["BridgeFunction"]["Properties"]
    # a hung AWS call gives up in time for the handler to fail the task token before Lambda stops it
    assert fn["Timeout"] >= handler.worst_case_seconds() + 30
    assert fn["Timeout"] <= 900
    for config in (handler.AWS_CLIENT_CONFIG, handler.MWAA_CLIENT_CONFIG):
        assert config["retries"]["mode"] == "standard" and config["retries"]["total_max_attempts"] <= 3
        assert config["connect_timeout"] + config["read_timeout"] < 60  # botocore's defaults are 60 + 60
    # MWAA's InvokeRestApi waits up to 10 s for Airflow: the read timeout must not cut a normal answer off
    assert handler.MWAA_CLIENT_CONFIG["read_timeout"] > 10


def test_bridge_role_least_privilege() -> None:
    tpl = _load(BRIDGE)
    statements = []
    for st in tpl["Resources"]["BridgeRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
        statements += [b for b in st["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}] if "Fn::If" in st else [st]
    actions = {st["Sid"]: st["Action"] if isinstance(st["Action"], list) else [st["Action"]] for st in statements}
    assert actions["TriggerTheDag"] == ["airflow:InvokeRestApi"]  # the IAM action; "mwaa:" is no IAM prefix
    assert not [a for acts in actions.values() for a in acts if a.startswith("mwaa:")]
    trigger = next(st for st in statements if st["Sid"] == "TriggerTheDag")
    assert trigger["Resource"]["Fn::Sub"].endswith(":role/${MwaaEnvironmentName}/${AirflowRole}")
    assert tpl["Parameters"]["AirflowRole"]["Default"] == "User"  # triggering needs no more
    star = [st["Sid"] for st in statements if st["Resource"] == "*"]
    assert star == ["FailTheToken"] and actions["FailTheToken"] == ["states:SendTaskFailure"]


def test_network_private_subnets_route_through_nat_and_s3_endpoint() -> None:
    res = _load(NETWORK)["Resources"]
    private = [n for n in res if re.fullmatch(r"PrivateSubnet[AB]", n)]
    assert len(private) == 2
    azs = {str(res[n]["Properties"]["AvailabilityZone"]) for n in private}
    assert len(azs) == 2  # MWAA needs two Availability Zones
    assert all(res[n]["Properties"]["MapPublicIpOnLaunch"] is False for n in private)
    tables = {res[a]["Properties"]["SubnetId"]["Ref"]: res[a]["Properties"]["RouteTableId"]["Ref"]
              for a in res if res[a]["Type"] == "AWS::EC2::SubnetRouteTableAssociation"}
    routes = [r["Properties"] for r in res.values() if r["Type"] == "AWS::EC2::Route"]
    for subnet in private:
        default = [r for r in routes if r["RouteTableId"] == {"Ref": tables[subnet]}
                   and r["DestinationCidrBlock"] == "0.0.0.0/0"]
        assert len(default) == 1 and "NatGatewayId" in default[0], subnet  # egress: ECR, ECS, logs, PyPI
    endpoint = res["S3GatewayEndpoint"]["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert {t["Ref"] for t in endpoint["RouteTableIds"]} == {tables[s] for s in private}
    outputs = _load(NETWORK)["Outputs"]
    assert outputs["PrivateSubnetIds"]["Value"] == {"Fn::Join": [",", [{"Ref": s} for s in sorted(private)]]}
