"""The VAMS bridge's Lambda zip carries the boto3 it needs (``mwaa.invoke_rest_api``), not the runtime's.

Built for real (``scripts/build_bridge_zip.py``: pip into a folder, manylinux wheels), unpacked as Lambda unpacks
it into ``/var/task``, and imported by a bare interpreter (``-S``: no site-packages, as if the runtime's boto3
were too old or absent), so only what the zip holds can answer.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, sys
sys.path.insert(0, sys.argv[1])  # /var/task comes first on Lambda's sys.path
import boto3, botocore
from vams_bridge import handler
client = boto3.client("mwaa", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
print(json.dumps({"boto3": boto3.__file__, "botocore": botocore.__version__, "handler": handler.__file__,
                  "invoke_rest_api": hasattr(client, "invoke_rest_api"),
                  "ops": sorted(client.meta.service_model.operation_names)}))
"""


def _builder():
    spec = importlib.util.spec_from_file_location("build_bridge_zip", REPO / "scripts" / "build_bridge_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zip_ships_a_boto3_with_invoke_rest_api(tmp_path: Path) -> None:
    zip_path = tmp_path / "vams_bridge.zip"
    names = _builder().build(zip_path)
    assert "vams_bridge/handler.py" in names and "boto3/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("bin/")]
    assert zip_path.stat().st_size < 50 * 2**20  # Lambda's limit for a zip
    task = tmp_path / "var-task"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(task)
        assert sum(i.file_size for i in zf.infolist()) < 250 * 2**20  # and unpacked
    base = getattr(sys, "_base_executable", sys.executable)
    proc = subprocess.run([base, "-S", "-c", PROBE, str(task)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["boto3"].startswith(str(task)) and report["handler"].startswith(str(task))
    assert report["invoke_rest_api"] and "InvokeRestApi" in report["ops"]
    # the floor in vams_bridge/requirements.txt is the botocore that added InvokeRestApi
    floor = (REPO / "vams_bridge" / "requirements.txt").read_text()
    assert "boto3>=1.35.74" in floor
    assert tuple(int(p) for p in report["botocore"].split(".")[:3]) >= (1, 35, 74)
