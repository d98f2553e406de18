"""Fetch and upload for the runner: ``s3://`` through boto3, local paths and ``file://`` through the filesystem.

The Airflow side has its own storage module on the amazon provider's S3Hook; the runner cannot use it
because the container has no Airflow (the two sides' pins conflict).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Collection
from pathlib import Path
from urllib.parse import unquote, urlparse


def join(base: str, *parts: str) -> str:
    """Join URI or path segments with single slashes."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def _local(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path)) if uri.startswith("file://") else Path(uri)


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def aws_region() -> str:
    """Return the AWS region for the runner's boto3 clients.

    ``AWS_REGION`` (set by recent ECS agents), then ``AWS_DEFAULT_REGION`` (set by the job definitions), then
    boto3's own configuration (``~/.aws/config``).

    Raises:
        RuntimeError: when none names a region (boto3 would fail later with a less useful ``NoRegionError``).
    """
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if os.environ.get(var, "").strip():
            return os.environ[var].strip()
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise RuntimeError("no AWS region for the runner: set AWS_REGION or AWS_DEFAULT_REGION (the stack's job "
                           "definitions set AWS_DEFAULT_REGION)")
    return region


@functools.cache
def _s3():  # noqa: ANN202 - boto3 client types are generated at run time
    import boto3  # only jobs that touch S3 pay for the import

    return boto3.client("s3", region_name=aws_region())


def download(uri: str, dest: Path) -> Path:
    """Copy ``uri`` to the local file ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith("s3://"):
        _s3().download_file(*_split_s3(uri), str(dest))
    else:
        shutil.copyfile(_local(uri), dest)
    return dest


def upload(src: Path, uri: str) -> None:
    """Copy the local file ``src`` to ``uri``; local writes are atomic (temp file + rename)."""
    if uri.startswith("s3://"):
        _s3().upload_file(str(src), *_split_s3(uri))
        return
    target = _local(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)


def write_text(uri: str, text: str, scratch: Path) -> None:
    """Write ``text`` to ``uri`` (through a scratch file, so S3 and local share one path)."""
    scratch.parent.mkdir(parents=True, exist_ok=True)
    scratch.write_text(text)
    upload(scratch, uri)


def upload_tree(root: Path, uri: str, skip: tuple[str, ...] = (), exclude: Collection[Path] = ()) -> int:
    """Upload every file under ``root`` to ``uri`` keeping relative paths; return the number of files.

    Files whose path relative to ``root`` matches a glob in ``skip``, and the files in ``exclude``, are left out.
    """
    count = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path in exclude or any(path.relative_to(root).match(pattern) for pattern in skip):
            continue
        upload(path, join(uri, path.relative_to(root).as_posix()))
        count += 1
    return count


def list_uris(prefix: str) -> list[str]:
    """List the files under a folder (``s3://`` prefix or local), sorted; local dot files are left out."""
    if prefix.startswith("s3://"):
        bucket, key = _split_s3(prefix)
        key = key.rstrip("/") + "/"
        pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return sorted(f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", []))
    root = _local(prefix)
    if not root.is_dir():
        return []
    scheme = "file://" if prefix.startswith("file://") else ""
    return sorted(f"{scheme}{p}" for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


def list_sizes(prefix: str) -> dict[str, int]:
    """The files under a folder (``s3://`` prefix or local) and their sizes, by path relative to it."""
    if prefix.startswith("s3://"):
        bucket, key = _split_s3(prefix)
        key = key.rstrip("/") + "/"
        pages = _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return {o["Key"][len(key):]: o["Size"] for page in pages for o in page.get("Contents", [])}
    root = _local(prefix)
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}
