"""One interface over ``s3://`` URIs (the amazon provider's S3Hook) and local paths (plain or ``file://``).

Every step speaks URIs; which store is behind one is decided here only, so the local mode and AWS share
the same code paths above this module.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse


@dataclass(frozen=True)
class StoredObject:
    """One stored file: its URI, size in bytes and modification time (epoch seconds)."""

    uri: str
    size: int
    mtime: float


class Storage(Protocol):
    """What the pipeline needs from a store."""

    def list(self, prefix: str) -> list[StoredObject]: ...
    def exists(self, uri: str) -> bool: ...
    def download(self, uri: str, dest: Path) -> Path: ...
    def upload(self, src: Path, uri: str) -> None: ...
    def read_bytes(self, uri: str) -> bytes | None: ...


def is_s3(uri: str) -> bool:
    """Return True for ``s3://`` URIs."""
    return uri.startswith("s3://")


def join(base: str, *parts: str) -> str:
    """Join URI or path segments with single slashes."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def local_path(uri: str) -> Path:
    """Return the local path of a plain path or ``file://`` URI."""
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    if "://" in uri:
        raise ValueError(f"{uri!r} is not a local path or file:// URI")
    return Path(uri)


class LocalStorage:
    """A local folder as the store (the embedded default)."""

    def list(self, prefix: str) -> list[StoredObject]:
        """List files at a file path or under a folder, recursively, sorted by URI."""
        root = local_path(prefix)
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = sorted(p for p in root.rglob("*") if p.is_file())
        else:
            return []
        # answer in the caller's spelling (file:// or plain), so URIs can be compared with the prefix
        scheme = "file://" if prefix.startswith("file://") else ""
        return [StoredObject(f"{scheme}{p}", (st := p.stat()).st_size, st.st_mtime) for p in files]

    def exists(self, uri: str) -> bool:
        """Return True if a file exists at ``uri``."""
        return local_path(uri).is_file()

    def download(self, uri: str, dest: Path) -> Path:
        """Copy ``uri`` to ``dest``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path(uri), dest)
        return dest

    def upload(self, src: Path, uri: str) -> None:
        """Copy ``src`` to ``uri`` atomically (write a temp file, then rename), so readers never see half a file."""
        target = local_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)


    def read_bytes(self, uri: str) -> bytes | None:
        """Return the file's bytes, or None if it does not exist."""
        path = local_path(uri)
        return path.read_bytes() if path.is_file() else None


class S3Storage:
    """S3 through the amazon provider's S3Hook (connection ``aws_conn_id``; endpoint from the connection/env)."""

    def __init__(self, aws_conn_id: str | None = "aws_default") -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.hook = S3Hook(aws_conn_id=aws_conn_id)

    def list(self, prefix: str) -> list[StoredObject]:
        """List objects under ``prefix`` (a key or a folder-like prefix), sorted by URI."""
        bucket, key = self.hook.parse_s3_url(prefix)
        paginator = self.hook.get_conn().get_paginator("list_objects_v2")
        out = []
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                # a prefix "a/b" must not match "a/bc/..."; an exact key or a folder below it is fine
                if k != key and key and not key.endswith("/") and not k.startswith(key + "/"):
                    continue
                out.append(StoredObject(f"s3://{bucket}/{k}", obj["Size"], obj["LastModified"].timestamp()))
        return sorted(out, key=lambda o: o.uri)

    def exists(self, uri: str) -> bool:
        """Return True if the object exists."""
        bucket, key = self.hook.parse_s3_url(uri)
        return self.hook.check_for_key(key, bucket_name=bucket)

    def download(self, uri: str, dest: Path) -> Path:
        """Download one object to ``dest``."""
        bucket, key = self.hook.parse_s3_url(uri)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.hook.get_conn().download_file(bucket, key, str(dest))
        return dest

    def upload(self, src: Path, uri: str) -> None:
        """Upload ``src`` to ``uri``, replacing what is there."""
        bucket, key = self.hook.parse_s3_url(uri)
        self.hook.load_file(str(src), key=key, bucket_name=bucket, replace=True)


    def read_bytes(self, uri: str) -> bytes | None:
        """Return the object's bytes, or None if it does not exist."""
        bucket, key = self.hook.parse_s3_url(uri)
        client = self.hook.get_conn()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None


def for_uri(uri: str, aws_conn_id: str | None = "aws_default") -> Storage:
    """Return the store behind ``uri``."""
    return S3Storage(aws_conn_id) if is_s3(uri) else LocalStorage()


def relative_key(uri: str, prefix: str) -> str:
    """Return ``uri`` relative to ``prefix`` ('' if equal)."""
    base = prefix.rstrip("/")
    if uri == base:
        return ""
    if not uri.startswith(base + "/"):
        raise ValueError(f"{uri!r} is not under {prefix!r}")
    return uri[len(base) + 1:]
