"""The Airflow side and the runner each carry a storage module (the runner's image has no Airflow, so no S3Hook).

Both spell staging and output URIs the same way; the URI helpers they share must agree, or a path the DAG writes
would not be the path the job reads.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from isaaclab_pipeline import storage as airflow_side
from isaaclab_runner import storage as runner_side

# control characters are refused at validation (and urllib drops some of them)
segment = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12)
roots = st.sampled_from(["s3://bucket", "s3://bucket/prefix/", "/tmp/home", "file:///tmp/home", "relative/dir"])


def test_join_is_the_same_code() -> None:
    assert inspect.getsource(airflow_side.join) == inspect.getsource(runner_side.join)


@given(roots, st.lists(segment, max_size=4))
def test_both_sides_join_uris_alike(base: str, parts: list[str]) -> None:
    assert airflow_side.join(base, *parts) == runner_side.join(base, *parts)


@given(st.sampled_from(["", "file://"]), st.lists(segment.filter(lambda s: "/" not in s and s), min_size=1,
                                                  max_size=4))
def test_both_sides_read_a_local_uri_as_the_same_path(scheme: str, parts: list[str]) -> None:
    uri = scheme + "/" + "/".join(p.replace("%", "%25").replace("?", "%3F").replace("#", "%23") for p in parts)
    expected = Path("/" + "/".join(parts)) if scheme else Path(uri)
    assert airflow_side.local_path(uri) == runner_side._local(uri) == expected
