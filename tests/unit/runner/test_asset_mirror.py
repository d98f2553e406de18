"""The asset mirror, runner side: a task's files synced into the host cache (sha256-checked, once per host), the
errors that name the missing file and the fix; and the resolve step's check before GPU time on the same mirror."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from isaaclab_runner import asset_mirror
from isaaclab_runner.asset_mirror import AssetMirrorError, AssetSync, sync_task

CARTPOLE = "Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd"
PLANE = "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda"


def make_mirror(root: Path, files: dict[str, bytes], tasks: dict[str, list[str]]) -> Path:
    """A mirror folder as mirror_assets writes it: the files at their paths, and asset-manifest.json."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    manifest = {"version": 1, "files": {rel: {"size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                                        for rel, d in files.items()},
                "tasks": tasks, "aliases": {"Isaac-Cartpole-v0": "Isaac-Cartpole"}, "assetRelease": "6.2"}
    (root / "asset-manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    return make_mirror(tmp_path / "mirror", {CARTPOLE: b"#usda 1.0\n" * 50, PLANE: b"#usda 1.0\n(plane)\n"},
                       {"Isaac-Cartpole": [CARTPOLE, PLANE], "Isaac-Cartpole-Direct": [CARTPOLE, PLANE]})


def test_a_fresh_host_fetches_the_tasks_files_and_the_next_job_none(mirror: Path, tmp_path: Path) -> None:
    cache = tmp_path / "host-cache"
    first = sync_task(str(mirror), "Isaac-Cartpole-v0", tmp_path / "job1", cache)  # the guide's 2.x id
    assert (first.fetched, first.cached, first.bytes_fetched) == (2, 0, 500 + 18)
    assert (first.root / CARTPOLE).read_bytes() == (mirror / CARTPOLE).read_bytes()
    assert (first.root / PLANE).is_file() and first.root.parent == cache
    second = sync_task(str(mirror), "Isaac-Cartpole-Direct", tmp_path / "job2", cache)
    assert (second.fetched, second.cached, second.root) == (0, 2, first.root)
    assert "0 file(s) fetched" in second.summary("Isaac-Cartpole-Direct")
    assert f"{asset_mirror.ASSET_ROOT_ENV}={first.root}" in second.summary("Isaac-Cartpole-Direct")


def test_two_mirrors_never_share_a_cache_folder(mirror: Path, tmp_path: Path) -> None:
    other = make_mirror(tmp_path / "other", {CARTPOLE: b"other"}, {"Isaac-Cartpole": [CARTPOLE]})
    a = sync_task(str(mirror), "Isaac-Cartpole", tmp_path / "a", tmp_path / "cache")
    b = sync_task(str(other), "Isaac-Cartpole", tmp_path / "b", tmp_path / "cache")
    assert a.root != b.root and (b.root / CARTPOLE).read_bytes() == b"other"


def test_a_file_missing_from_the_mirror_names_it_and_the_fix(mirror: Path, tmp_path: Path) -> None:
    (mirror / PLANE).unlink()
    with pytest.raises(AssetMirrorError, match=rf"has no {PLANE}.*make mirror-assets TASKS=Isaac-Cartpole"):
        AssetSync(str(mirror), "Isaac-Cartpole", tmp_path / "job", tmp_path / "cache").start().wait(30)


def test_a_corrupt_file_is_refused_and_not_cached(mirror: Path, tmp_path: Path) -> None:
    (mirror / CARTPOLE).write_bytes(b"#usda 1.0\n" * 49 + b"#usdb 1.0\n")  # same size, other bytes
    with pytest.raises(AssetMirrorError, match="does not match its sha256"):
        sync_task(str(mirror), "Isaac-Cartpole", tmp_path / "job", tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("cartpole.usd*"))


def test_no_manifest_and_unmirrored_task(tmp_path: Path, mirror: Path) -> None:
    with pytest.raises(AssetMirrorError, match=r"asset-manifest.json not read.*isaaclab_asset_mirror_uri"):
        sync_task(str(tmp_path / "nowhere"), "Isaac-Cartpole", tmp_path / "job", tmp_path / "cache")
    custom = sync_task(str(mirror), "Isaac-Custom-Cartpole-Direct", tmp_path / "job", tmp_path / "cache")
    assert not custom.mirrored and custom.fetched == 0  # an env package's own task: nothing to sync
    assert "not in the mirror's manifest" in custom.summary("Isaac-Custom-Cartpole-Direct")


def test_the_cache_and_the_mirror_come_from_the_deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert asset_mirror.cache_root({"ISAACLAB_RUNNER_ASSET_CACHE": "/var/cache/a"}) == Path("/var/cache/a")
    assert asset_mirror.cache_root({"XDG_CACHE_HOME": "/x"}) == Path("/x/isaaclab-runner/assets")
    monkeypatch.setenv(asset_mirror.MIRROR_URI_ENV, "s3://b/assets")
    assert asset_mirror.mirror_uri(None) == "s3://b/assets"
    assert asset_mirror.mirror_uri("s3://spec/wins") == "s3://spec/wins"


def test_the_resolve_step_checks_the_same_mirror_before_gpu_time(mirror: Path) -> None:
    from isaaclab_pipeline.asset_mirror import check_task_assets, servable

    assert check_task_assets(str(mirror), "Isaac-Cartpole-v0") is None
    assert check_task_assets(str(mirror), "Isaac-Cartpole-Direct-v0") is None
    assert "does not hold Isaac-Ant-v0's assets (it holds: Isaac-Cartpole, Isaac-Cartpole-Direct)" in (
        check_task_assets(str(mirror), "Isaac-Ant-v0"))
    (mirror / PLANE).unlink()
    problem = check_task_assets(str(mirror), "Isaac-Cartpole-v0")
    assert problem.startswith(f"the asset mirror {mirror} lacks 1 of Isaac-Cartpole-v0's 2 asset file(s) ({PLANE})")
    assert "make mirror-assets TASKS=Isaac-Cartpole-v0" in problem
    assert servable(str(mirror), ["Isaac-Cartpole", "Isaac-Ant"]) == {"Isaac-Cartpole": False, "Isaac-Ant": False}
    assert "has no asset-manifest.json" in check_task_assets(str(mirror.parent / "empty"), "Isaac-Cartpole")
