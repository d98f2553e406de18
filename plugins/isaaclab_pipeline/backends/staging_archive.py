"""Staging is scoped per submission: what an earlier submission of a job staged is moved aside before the next one
starts (both backends call it from ``submit``)."""

from __future__ import annotations

import logging

from isaaclab_pipeline.aws_retry import retry_transient

log = logging.getLogger(__name__)

SUPERSEDED = "superseded"  # {staging root}/superseded/{job id}/submission-<n>/: what earlier submissions staged


def archive_staging(staging_uri: str, aws_conn_id: str | None = "aws_default") -> str | None:
    """Move what an earlier submission of this job staged out of the way, before a new submission starts.

    Staging is scoped per submission: a resubmitted job (after a failed one, or a cleared DAG run) must neither
    resume from the old job's checkpoints nor have them converted and published as its own. Nothing is deleted:
    the old files go to ``{staging root}/superseded/{job id}/submission-<n>/``.

    :return: the archive's URI, or None if the staging folder was empty.
    """
    from isaaclab_pipeline import storage

    store = storage.for_uri(staging_uri, aws_conn_id)
    if not retry_transient(lambda: store.list(staging_uri), what=f"listing {staging_uri}"):
        return None
    root, job = staging_uri.rstrip("/").rsplit("/", 1)
    base = storage.join(root, SUPERSEDED, job)
    taken = {storage.relative_key(o.uri, base).split("/", 1)[0] for o in store.list(base)}
    number = 1
    while f"submission-{number}" in taken:
        number += 1
    dest = storage.join(base, f"submission-{number}")
    moved = retry_transient(lambda: storage.move_tree(staging_uri, dest, aws_conn_id), what=f"archiving {staging_uri}")
    log.warning("Staging of an earlier submission (%d file(s)) moved to %s: the new job starts from empty staging",
                moved, dest)
    return dest
