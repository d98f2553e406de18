"""Every boto3 client the runner makes names its region (the container may have no AWS_REGION: older ECS agents)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from isaaclab_runner import storage
from isaaclab_runner.cloudwatch import MetricPublisher

RUNNER = Path(__file__).resolve().parents[3] / "task_image" / "isaaclab_runner"


def _clients() -> list[tuple[str, ast.Call]]:
    """Every ``boto3.client(...)`` / ``boto3.resource(...)`` call in the runner's sources."""
    out = []
    for path in sorted(RUNNER.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "boto3"
                    and node.func.attr in ("client", "resource")):
                out.append((f"{path.name}:{node.lineno}", node))
    return out


def test_every_runner_client_passes_region_name() -> None:
    clients = _clients()
    assert len(clients) >= 2  # s3 (storage) and cloudwatch (GPU metrics) at least
    missing = [where for where, call in clients if "region_name" not in {k.arg for k in call.keywords}]
    assert missing == []


@pytest.fixture
def no_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    storage._s3.cache_clear()
    yield monkeypatch
    storage._s3.cache_clear()


def test_job_definitions_region_reaches_the_clients(no_aws_config: pytest.MonkeyPatch) -> None:
    no_aws_config.setenv("AWS_DEFAULT_REGION", "eu-west-1")  # what the stack's job definitions set
    assert storage._s3().meta.region_name == "eu-west-1"
    assert MetricPublisher("job-1").client.meta.region_name == "eu-west-1"
    no_aws_config.setenv("AWS_REGION", "us-west-2")  # a recent ECS agent's own variable wins
    storage._s3.cache_clear()
    assert storage._s3().meta.region_name == "us-west-2"


def test_no_region_is_a_clear_error(no_aws_config: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="AWS_REGION or AWS_DEFAULT_REGION"):
        storage._s3()

