"""One interface over ``s3://`` URIs (the amazon provider's S3Hook) and local paths (plain or ``file://``).

Every step speaks URIs; which store is behind one is decided here only, so the local mode and AWS share
the same code paths above this module.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredObject:
    """One stored file: its URI, size in bytes and modification time (epoch seconds)."""

    uri: str
    size: int
    mtime: float


class Storage(Protocol):
    """What the pipeline needs from a store."""

    def list(self, prefix: str, limit: int | None = None) -> list[StoredObject]: ...
    def exists(self, uri: str) -> bool: ...
    def download(self, uri: str, dest: Path) -> Path: ...
    def upload(self, src: Path, uri: str) -> None: ...
    def read_bytes(self, uri: str) -> bytes | None: ...
    def delete(self, uri: str) -> None: ...


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

    def list(self, prefix: str, limit: int | None = None) -> list[StoredObject]:
        """List files at a file path or under a folder, recursively, sorted by URI.

        Symbolic links inside the folder are neither listed nor followed: a job writing its staging folder could
        point one anywhere on this machine.

        :param limit: raise :class:`TooManyObjectsError` past this many files (a conf naming ``/``).
        """
        root = local_path(prefix)
        if root.is_file():
            files = [root]
        elif root.is_dir():
            files = []
            for folder, dirs, names in os.walk(root):  # os.walk does not descend into symlinked folders
                for name in names:
                    path = Path(folder, name)
                    if path.is_symlink():
                        log.warning("not listing %s: a symbolic link", path)
                    elif path.is_file():
                        files.append(path)
                        if limit is not None and len(files) > limit:
                            raise TooManyObjectsError(f"{prefix} holds more than {limit} files")
                links = [d for d in dirs if Path(folder, d).is_symlink()]
                for d in links:
                    log.warning("not listing %s: a symbolic link", Path(folder, d))
            files.sort()
        else:
            return []
        # answer in the caller's spelling (file:// or plain), so URIs can be compared with the prefix
        scheme = "file://" if prefix.startswith("file://") else ""
        out = []
        for path in files:
            try:
                st = path.stat()
            except FileNotFoundError:  # removed while listing
                continue
            out.append(StoredObject(f"{scheme}{path}", st.st_size, st.st_mtime))
        return out

    def exists(self, uri: str) -> bool:
        """Return True if a file exists at ``uri``."""
        return local_path(uri).is_file()

    def download(self, uri: str, dest: Path) -> Path:
        """Copy ``uri`` to ``dest`` (a symbolic link at ``uri`` is refused, not followed)."""
        src = local_path(uri)
        if src.is_symlink():
            raise UnsafeKeyError(f"{uri}: a symbolic link; refusing to copy what it points to")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest, follow_symlinks=False)
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

    def delete(self, uri: str) -> None:
        """Remove the file at ``uri`` (nothing if there is none)."""
        local_path(uri).unlink(missing_ok=True)


class S3Storage:
    """S3 through the amazon provider's S3Hook (connection ``aws_conn_id``; endpoint from the connection/env)."""

    def __init__(self, aws_conn_id: str | None = "aws_default") -> None:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.hook = S3Hook(aws_conn_id=aws_conn_id)

    def list(self, prefix: str, limit: int | None = None) -> list[StoredObject]:
        """List objects under ``prefix`` (a key or a folder-like prefix), sorted by URI.

        :param limit: raise :class:`TooManyObjectsError` past this many objects.
        """
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
                if limit is not None and len(out) > limit:
                    raise TooManyObjectsError(f"{prefix} holds more than {limit} objects")
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

    def delete(self, uri: str) -> None:
        """Delete one object."""
        bucket, key = self.hook.parse_s3_url(uri)
        self.hook.get_conn().delete_object(Bucket=bucket, Key=key)

    def copy(self, src_uri: str, dst_uri: str) -> None:
        """Copy one object server-side (managed: multipart above 5 GB)."""
        src_bucket, src_key = self.hook.parse_s3_url(src_uri)
        dst_bucket, dst_key = self.hook.parse_s3_url(dst_uri)
        self.hook.get_conn().copy({"Bucket": src_bucket, "Key": src_key}, dst_bucket, dst_key)


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


# Staged keys are written by the job, and so by the user's env package: nothing read back from staging is trusted.


class TooManyObjectsError(ValueError):
    """A listing passed its limit: the prefix is not what the caller expects (an asset is a package and a few
    checkpoints, not a disk or a whole bucket)."""


class UnsafeKeyError(ValueError):
    """A staged key that would name a place outside its folder, or a link; it is refused, never followed."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key: no ``..``, ``.`` or empty parts, not absolute, no backslash,
    no control characters.

    :raises UnsafeKeyError: naming what is wrong.
    """
    if not key:
        raise UnsafeKeyError("empty key")
    if key.startswith("/"):
        raise UnsafeKeyError(f"{key!r}: absolute")
    if "\\" in key:
        raise UnsafeKeyError(f"{key!r}: holds a backslash")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise UnsafeKeyError(f"{key!r}: holds a control character")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise UnsafeKeyError(f"{key!r}: has a {part!r} part" if part else f"{key!r}: has an empty part")
    return key


def safe_target(root: Path, key: str) -> Path:
    """Return ``root / key`` after checking the key and that the resolved path stays inside ``root``.

    :raises UnsafeKeyError: if the key is unsafe or the path resolves outside ``root`` (a symlink on the way).
    """
    check_key(key)
    target = root / key
    if not target.resolve().is_relative_to(root.resolve()):
        raise UnsafeKeyError(f"{key!r}: resolves outside {root}")
    return target


def list_staged(store: Storage, prefix: str) -> tuple[dict[str, StoredObject], list[dict[str, str]]]:
    """List the files under a staging prefix by safe relative key.

    :return: ({relative key: object} of the safe keys, [{"key", "reason"}] of the refused ones).
    """
    safe: dict[str, StoredObject] = {}
    refused: list[dict[str, str]] = []
    for obj in store.list(prefix):
        rel = relative_key(obj.uri, prefix)
        try:
            safe[check_key(rel)] = obj
        except UnsafeKeyError as exc:
            log.warning("refusing staged key under %s: %s", prefix, exc)
            refused.append({"key": rel, "reason": str(exc)})
    return safe, refused


def check_writable(uri: str, aws_conn_id: str | None = "aws_default") -> None:
    """Write and delete a small probe object under ``uri``, so an unwritable output fails before any GPU time.

    :raises Exception: the store's own error (permission denied, no such bucket, a file where a folder should be).
    """
    store = for_uri(uri, aws_conn_id)
    probe_uri = join(uri, f".isaaclab-write-check-{uuid.uuid4().hex}")
    with tempfile.TemporaryDirectory(prefix="isaaclab-probe-") as tmp:
        probe = Path(tmp) / "probe"
        probe.write_text("isaac-lab-training: checking this location is writable; safe to delete\n")
        store.upload(probe, probe_uri)
    try:
        store.delete(probe_uri)
    except Exception as exc:  # writable is what was asked; a probe left behind is only untidy
        log.warning("could not delete the write probe %s: %s", probe_uri, exc)


def move_tree(prefix: str, dest_prefix: str, aws_conn_id: str | None = "aws_default") -> int:
    """Move every file under ``prefix`` to the same relative key under ``dest_prefix``; return how many moved.

    S3: server-side copy, then delete. Local: a rename of the folder (or of each file).
    """
    store = for_uri(prefix, aws_conn_id)
    if isinstance(store, LocalStorage):
        src, dst = local_path(prefix), local_path(dest_prefix)
        if not src.is_dir():
            return 0
        count = len(store.list(prefix))
        if dst.exists():
            raise FileExistsError(f"{dst} exists; not moving {src} onto it")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)  # one rename: nothing half moved
        return count
    assert isinstance(store, S3Storage)
    moved = 0
    for obj in store.list(prefix):
        rel = relative_key(obj.uri, prefix)
        store.copy(obj.uri, join(dest_prefix, rel))
        store.delete(obj.uri)
        moved += 1
    return moved
