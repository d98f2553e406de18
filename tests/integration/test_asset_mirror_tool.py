"""``make mirror-assets``: a task's asset closure (sublayers, references, textures) copied from an upstream asset
root (a local folder standing in for NVIDIA's server) into a mirror with its manifest; a second run copies nothing;
the resolve step then refuses, before GPU time, a task whose files the mirror lacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import jsonschema
import pytest
from pipeline_env import ISAACLAB_PYTHON

REPO = Path(__file__).resolve().parents[2]
CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"
PROPS = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/props/lights.usda"
TEXTURE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/textures/grid.png"

pytestmark = [pytest.mark.isaaclab,
              pytest.mark.skipif(not ISAACLAB_PYTHON.exists(), reason="needs the Isaac Lab venv (make install)")]


def mirror_assets(*args: str) -> subprocess.CompletedProcess[str]:
    """The runner's command, as `make mirror-assets` and a one-off Batch job run it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(ISAACLAB_PYTHON), "-m", "isaaclab_runner", "mirror-assets", *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def upstream() -> Path:
    """The stand-ins, with the ground plane given a sublayer that holds a texture and a reference on the web."""
    root = Path(tempfile.mkdtemp(prefix="asset-upstream-"))
    subprocess.run([str(ISAACLAB_PYTHON), str(REPO / "examples" / "asset_mirror" / "build_standins.py"), "--out",
                    str(root)], check=True, capture_output=True, timeout=300)
    plane = root / PLANE
    text = plane.read_text()
    assert text.startswith("#usda 1.0\n(\n")
    plane.write_text(text.replace("#usda 1.0\n(\n", "#usda 1.0\n(\n    subLayers = [@./props/lights.usda@]\n", 1))
    (root / PROPS).parent.mkdir(parents=True)
    (root / PROPS).write_text('#usda 1.0\ndef Xform "Lights" (\n    prepend references = '
                              '@https://example.com/elsewhere.usd@\n)\n{\n    def Shader "Tex" {\n'
                              '        asset inputs:file = @../textures/grid.png@\n    }\n}\n')
    (root / TEXTURE).parent.mkdir(parents=True)
    (root / TEXTURE).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_closure_is_mirrored_once_and_resolve_refuses_what_is_missing(upstream: Path, tmp_path: Path) -> None:
    from isaaclab_pipeline.config import validate_conf
    from isaaclab_pipeline.resolve import ResolveError, build_job_spec
    from isaaclab_pipeline.settings import PipelineSettings

    mirror = tmp_path / "mirror"
    first = mirror_assets("--mirror", str(mirror), "--upstream", str(upstream), "--tasks", "Isaac-Cartpole-v0")
    assert "4 file(s) copied" in first.stdout, first.stdout
    assert "skipped https://example.com/elsewhere.usd (in " + PROPS in first.stdout  # not a file of the root
    held = {p.relative_to(mirror).as_posix() for p in mirror.rglob("*") if p.is_file()}
    assert held == {CARTPOLE, PLANE, PROPS, TEXTURE, "asset-manifest.json"}
    manifest = json.loads((mirror / "asset-manifest.json").read_text())
    jsonschema.validate(manifest, json.loads((REPO / "include/schemas/asset-manifest.schema.json").read_text()))
    assert manifest["tasks"] == {"Isaac-Cartpole": sorted([CARTPOLE, PLANE, PROPS, TEXTURE])}
    assert manifest["aliases"] == {"Isaac-Cartpole-v0": "Isaac-Cartpole"}
    assert manifest["files"][TEXTURE]["size"] == 8 + 256 * 8 and manifest["isaacLabVersion"] == "3.0.0"
    assert (mirror / TEXTURE).read_bytes() == (upstream / TEXTURE).read_bytes()

    stamp = (mirror / "asset-manifest.json").stat().st_mtime_ns
    second = mirror_assets("--mirror", str(mirror), "--upstream", str(upstream), "--tasks", "Isaac-Cartpole-v0")
    assert "0 file(s) copied" in second.stdout and "1 task(s) already mirrored (Isaac-Cartpole)" in second.stdout
    assert (mirror / "asset-manifest.json").stat().st_mtime_ns == stamp

    # the direct task shares the files: added to the manifest, nothing copied
    third = mirror_assets("--mirror", str(mirror), "--upstream", str(upstream), "--tasks", "Isaac-Cartpole-Direct")
    assert "0 file(s) copied" in third.stdout, third.stdout

    out = tmp_path / "out"
    out.mkdir()
    settings = PipelineSettings(staging_uri=str(tmp_path / "staging"), asset_mirror_uri=str(mirror))
    conf = validate_conf({"trainingConfig": {}, "outputS3Path": str(out)})  # the guide's default task
    assert build_job_spec(conf, "job-1", settings).asset_mirror_uri == str(mirror)
    (mirror / TEXTURE).unlink()
    with pytest.raises(ResolveError, match=rf"trainingConfig.task: the asset mirror {mirror} lacks 1 of "
                                           rf"Isaac-Cartpole-v0's 4 asset file\(s\) \({TEXTURE}\).*make mirror-assets"):
        build_job_spec(conf, "job-2", settings)
    ant = validate_conf({"trainingConfig": {"task": "Isaac-Ant-v0"}, "outputS3Path": str(out)})
    with pytest.raises(ResolveError, match="does not hold Isaac-Ant-v0's assets"):
        build_job_spec(ant, "job-3", settings)


def test_list_tasks_marks_what_the_mirror_serves(upstream: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """`make list-tasks` with a mirror set: each task marked `mirror: yes|no`, and the count."""
    from isaaclab_tools.cli import list_tasks

    mirror = tmp_path / "mirror"
    mirror_assets("--mirror", str(mirror), "--upstream", str(upstream), "--tasks", "Isaac-Cartpole-Direct-v0")
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ASSET_MIRROR_URI", str(mirror))
    monkeypatch.setenv("AIRFLOW_VAR_ISAACLAB_ISAACLAB_PYTHON", str(ISAACLAB_PYTHON))
    monkeypatch.setenv("ISAACLAB_KNOWN_TASKS", str(tmp_path / "known-tasks.json"))
    assert list_tasks(None) == 0
    lines = capsys.readouterr().out.splitlines()
    marks = dict(line.split("\t")[0::2] for line in lines if "\tmirror: " in line)
    assert marks["Isaac-Cartpole-Direct"] == "mirror: yes"
    assert marks["Isaac-Cartpole"] == marks["Isaac-Ant"] == "mirror: no"
    assert f"asset mirror {mirror}: 1 of {len(marks)} tasks served from it" in lines
