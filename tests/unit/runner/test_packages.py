"""Safe extraction of env packages: hostile archives are refused and nothing lands outside the work dir."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from isaaclab_runner import packages
from isaaclab_runner.packages import PackageError, find_project_root, safe_extract


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_project_folder_archive_extracts(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "p.tar.gz", [_file("proj/pyproject.toml", b"[project]\nname = 'p'\n"),
                                           _file("proj/pkg/__init__.py")])
    root = safe_extract(archive, tmp_path / "out")
    assert (root / "proj" / "pkg" / "__init__.py").read_bytes() == b"x"
    assert find_project_root(root) == root / "proj"


@pytest.mark.parametrize("member", [
    _file("../escape.txt"),
    _file("/abs/escape.txt"),
    _file("proj/../../escape.txt"),
    _link("proj/evil", "/etc/passwd"),
    _link("proj/evil", "../../escape.txt"),
    _link("proj/hard", "../../escape.txt", tarfile.LNKTYPE),
])
def test_hostile_tar_members_are_refused(tmp_path: Path, member: tuple) -> None:
    archive = _tar(tmp_path / "evil.tar.gz", [_file("proj/pyproject.toml"), member])
    work = tmp_path / "work"
    with pytest.raises(PackageError, match="evil.tar.gz: refusing to extract"):
        safe_extract(archive, work / "out")
    assert not (tmp_path / "escape.txt").exists()
    assert not Path("/abs/escape.txt").exists()
    assert [p.name for p in work.rglob("*") if p.is_file()] in ([], ["pyproject.toml"])


def test_zip_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    info = zipfile.ZipInfo("proj/evil")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(PackageError, match="refusing member 'proj/evil'"):
        safe_extract(archive, tmp_path / "out")


def test_bomb_is_refused_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "MAX_TOTAL_BYTES", 1000)
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("proj/zeros.bin", b"\0" * 100_000)  # ~100 bytes compressed, 100 kB unpacked
    with pytest.raises(PackageError, match="100000 bytes unpacked is over the limit of 1000"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "proj").exists()


def test_too_many_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "MAX_FILES", 3)
    archive = _tar(tmp_path / "many.tar.gz", [_file(f"proj/f{i}") for i in range(5)])
    with pytest.raises(PackageError, match="5 files is over the limit of 3"):
        safe_extract(archive, tmp_path / "out")


def test_archive_without_a_project_says_how_to_package(tmp_path: Path) -> None:
    root = safe_extract(_tar(tmp_path / "p.tgz", [_file("just/a/file.py")]), tmp_path / "out")
    with pytest.raises(PackageError, match="tar -czf"):
        find_project_root(root)
