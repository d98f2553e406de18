"""The UI tests' server: one real api-server per test module (``ui_server.start_server``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ui_server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("ui-server"))
