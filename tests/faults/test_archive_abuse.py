"""Archive abuse: hostile env packages are refused by the runner's ``safe_extract`` and nothing lands outside.

Complements tests/unit/runner/test_packages.py (plain tar slip, links leaving the tree, a deflate bomb, too
many files) with zip slip, device and FIFO members, set-uid bits, a member over the size budget, a gzip bomb, lying zip
headers, links that stay inside, and the symlink-chain bypass of tarfile's ``data`` filter (CVE-2025-4517).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from isaaclab_runner import packages
from isaaclab_runner.packages import PackageError, safe_extract


def _info(name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, **attrs: object) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    if data is not None:
        info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def _tar(path: Path, members: list[tuple], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _outside_untouched(root: Path) -> list[str]:
    """Files that appeared next to the work folder (where an escape would write)."""
    return sorted(p.name for p in root.iterdir() if p.name not in ("work", "flag", "pkg.tar.gz", "pkg.zip",
                                                                   "pkg.tar"))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "flag").write_text("original")
    return tmp_path


@pytest.mark.parametrize(("member", "why"), [
    (_info("proj/tty", tarfile.CHRTYPE, devmajor=5, devminor=0), "character device"),
    (_info("proj/disk", tarfile.BLKTYPE, devmajor=8, devminor=0), "block device"),
    (_info("proj/pipe", tarfile.FIFOTYPE), "FIFO"),
    (_info("proj/hard", tarfile.LNKTYPE, linkname="/etc/passwd"), "hard link to an absolute path"),
    (_info("proj/up", tarfile.SYMTYPE, linkname="../../flag"), "symlink out of the tree"),
    (_info("proj/abs", tarfile.SYMTYPE, linkname="/tmp"), "absolute symlink"),
    (_info("../flag", data=b"overwrite"), "'..' member"),
    (_info("/tmp/abs-member", data=b"x"), "absolute member"),
])
def test_special_and_escaping_tar_members_are_refused(site: Path, member: tuple, why: str) -> None:
    archive = _tar(site / "pkg.tar.gz", [_info("proj/pyproject.toml", data=b""), member])
    with pytest.raises(PackageError, match="refusing"):
        safe_extract(archive, site / "work" / "out")
    assert (site / "flag").read_text() == "original", why
    assert _outside_untouched(site) == [], why
    assert not Path("/tmp/abs-member").exists()
    out = site / "work" / "out"
    specials = [p for p in out.rglob("*") if not (p.is_file() or p.is_dir()) or p.is_symlink()] if out.exists() else []
    assert specials == [], why


def test_a_write_through_a_symlink_to_outside_is_refused(site: Path) -> None:
    """A link to the parent, then a member written through it."""
    archive = _tar(site / "pkg.tar.gz", [_info("proj/pyproject.toml", data=b""),
                                         _info("proj/link", tarfile.SYMTYPE, linkname="../.."),
                                         _info("proj/link/flag", data=b"overwrite")])
    with pytest.raises(PackageError):
        safe_extract(archive, site / "work" / "out")
    assert (site / "flag").read_text() == "original"


def test_set_uid_bits_are_stripped(site: Path) -> None:
    archive = _tar(site / "pkg.tar.gz", [_info("proj/pyproject.toml", data=b""),
                                         _info("proj/run.sh", data=b"#!/bin/sh\n", mode=0o6755)])
    root = safe_extract(archive, site / "work" / "out")
    mode = (root / "proj" / "run.sh").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID)


def test_links_inside_the_tree_stay_inside(site: Path) -> None:
    """Refusing every link would be fine too (a package needs none); extracting one must not leave the tree."""
    archive = _tar(site / "pkg.tar.gz", [_info("proj/pyproject.toml", data=b"[project]\n"),
                                         _info("proj/alias.toml", tarfile.SYMTYPE, linkname="pyproject.toml")])
    try:
        root = safe_extract(archive, site / "work" / "out")
    except PackageError:
        return
    assert (root / "proj" / "alias.toml").resolve().is_relative_to(root)


def test_a_member_over_the_size_budget_is_refused_before_writing(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "MAX_TOTAL_BYTES", 50_000)
    archive = _tar(site / "pkg.tar.gz", [_info("proj/pyproject.toml", data=b""),
                                         _info("proj/huge.bin", data=b"\0" * 60_000)])
    with pytest.raises(PackageError, match="60000 bytes unpacked is over the limit of 50000"):
        safe_extract(archive, site / "work" / "out")
    assert not (site / "work" / "out" / "proj").exists()


def test_a_gzip_bomb_is_refused_before_writing(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~10 MB of zeros compress to ~10 kB: the ratio is the bomb; the declared sizes give it away."""
    monkeypatch.setattr(packages, "MAX_TOTAL_BYTES", 1_000_000)
    archive = _tar(site / "pkg.tar.gz", [_info(f"proj/zeros{i}.bin", data=b"\0" * 1_000_000) for i in range(10)])
    assert archive.stat().st_size < 100_000
    with pytest.raises(PackageError, match="over the limit"):
        safe_extract(archive, site / "work" / "out")
    assert not (site / "work" / "out" / "proj").exists()


def test_many_tiny_zip_members_are_refused(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(packages, "MAX_FILES", 100)
    archive = site / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(101):
            zf.writestr(f"proj/f{i}", b"")
    with pytest.raises(PackageError, match="101 files is over the limit of 100"):
        safe_extract(archive, site / "work" / "out")


def test_a_zip_that_lies_about_its_sizes_stops_at_the_lie(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A header claiming 10 bytes for 1 MB of deflated zeros: extraction stops at the claim (CRC error)."""
    monkeypatch.setattr(packages, "MAX_TOTAL_BYTES", 1000)
    archive = site / "pkg.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("proj/zeros.bin", b"\0" * 1_000_000)
    data = bytearray(archive.read_bytes())
    for header, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central uncompressed sizes
        at = data.find(header)
        data[at + offset:at + offset + 4] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(PackageError):
        safe_extract(archive, site / "work" / "out")
    written = [p.stat().st_size for p in (site / "work" / "out").rglob("*") if p.is_file()]
    assert sum(written) <= 10


@pytest.mark.parametrize("name", ["proj/../../flag", "/flag", "../flag"])
def test_zip_slip_is_refused(site: Path, name: str) -> None:
    archive = site / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("proj/pyproject.toml", "")
        zf.writestr(name, "overwrite")
    with pytest.raises(PackageError, match="refusing member"):
        safe_extract(archive, site / "work" / "out")
    assert (site / "flag").read_text() == "original"


def test_a_zip_directory_symlink_is_refused(site: Path) -> None:
    archive = site / "pkg.zip"
    info = zipfile.ZipInfo("proj/dir/")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(info, "../..")
    with pytest.raises(PackageError, match="refusing member"):
        safe_extract(archive, site / "work" / "out")


def _realpath_chain_archive(path: Path, dest: Path) -> Path:
    """Symlinks whose expansion outgrows PATH_MAX, so ``os.path.realpath`` stops resolving and tarfile's ``data``
    filter (Python < 3.12.11) waves through a link to ``dest``'s parent; a hard link through it then overwrites a
    file there and a new file is created there (CVE-2025-4517)."""
    steps = "abcdefghijklmnop"
    max_path = os.pathconf(dest.parent, "PC_PATH_MAX")
    component = "d" * ((max_path - len(str(dest)) - 1) // (len(steps) + 1))
    members, inner = [], ""
    for step in steps:
        members.append(_info(os.path.join(inner, component), tarfile.DIRTYPE, mode=0o777))
        members.append(_info(os.path.join(inner, step), tarfile.SYMTYPE, linkname=component))
        inner = os.path.join(inner, component)
    link = os.path.join(*steps, "l" * 254)
    members += [_info(link, tarfile.SYMTYPE, linkname=os.path.join(*[".."] * len(steps))),
                _info("escape", tarfile.SYMTYPE, linkname=os.path.join(link, "..")),
                _info("flaglink", tarfile.LNKTYPE, linkname="escape/flag"),
                _info("flaglink", data=b"overwrite"),
                _info("escape/newfile", data=b"new")]
    return _tar(path, members, mode="w")


# safe_extract refuses link members itself, so this holds on every 3.12 patch level, including those (< 3.12.11)
# whose tarfile data filter a symlink chain gets past (CVE-2025-4517)
def test_the_realpath_overflow_symlink_chain_is_refused(site: Path) -> None:
    dest = site / "work" / "out"
    dest.parent.mkdir(parents=True)
    (dest.parent / "flag").write_text("original")  # beside the extraction folder, where the chain leads
    archive = _realpath_chain_archive(site / "pkg.tar", dest)
    with contextlib.suppress(PackageError, OSError):
        safe_extract(archive, dest)
    # whatever was raised, nothing outside the extraction folder may have changed
    assert (dest.parent / "flag").read_text() == "original"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["flag", "out"]
