"""The runs view's FastAPI app, mounted by the api-server at ``/isaaclab`` (``ui.plugin``).

Routes (every one but the icon behind Airflow's own auth: the session cookie the UI's login set, or a bearer token,
and the auth manager's permission to read this DAG's runs, task instances and XComs):

- ``GET /isaaclab/runs``: the page (``page.html``), shown inside the Airflow UI as an external view;
- ``GET /isaaclab/api/runs?limit=25&run_id=...``: the runs as JSON (``runs.describe``);
- ``GET /isaaclab/api/runs/{run_id}/trials/{index}/files/{name}``: a published file of the run (only names its
  manifest.json lists; local folders and S3 alike, up to ``MAX_FILE_BYTES``).
"""

from __future__ import annotations

import logging
import mimetypes
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from isaaclab_pipeline.ui.artifacts import Artifacts
    from isaaclab_pipeline.ui.queries import RunRecord

log = logging.getLogger(__name__)

URL_PREFIX = "/isaaclab"
PAGE = Path(__file__).with_name("page.html")
ICON = Path(__file__).with_name("icon.svg")
MAX_RUNS = 100
MAX_FILE_BYTES = 64 * 1024 * 1024
SETTINGS_TTL_S = 60.0


def file_url(run_id: str, index: int, name: str) -> str:
    """Where the app serves a run's published file."""
    return f"{URL_PREFIX}/api/runs/{quote(run_id, safe='')}/trials/{index}/files/{quote(name)}"


def create_app() -> Any:
    """Build the app (imports Airflow's API modules: call it in the api-server only)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    from isaaclab_pipeline.config import DAG_ID

    readers = [Depends(requires_access_dag("GET", entity, param_dag_id=DAG_ID))
               for entity in (DagAccessEntity.RUN, DagAccessEntity.TASK_INSTANCE, DagAccessEntity.XCOM)]
    app = FastAPI(title="Isaac Lab runs", docs_url=None, redoc_url=None, openapi_url=None)
    artifacts = _artifacts_cache()

    @app.get("/runs", response_class=HTMLResponse, dependencies=readers)
    def page() -> HTMLResponse:
        """The runs view."""
        return HTMLResponse(PAGE.read_text(), headers={"Cache-Control": "no-store"})

    @app.get("/icon.svg")
    def icon() -> Response:
        """The view's icon in the Airflow navigation (no data: served without auth)."""
        return Response(ICON.read_bytes(), media_type="image/svg+xml")

    @app.get("/api/runs", dependencies=readers)
    def list_runs(limit: int = Query(25, ge=1, le=MAX_RUNS), run_id: str | None = None) -> JSONResponse:
        """The newest runs (or one run) with steps, progress, result, cost and links."""
        now = time.time()
        found = _records(limit, run_id)
        if run_id is not None and not found:
            raise HTTPException(404, f"no run {run_id!r} of DAG {DAG_ID}")
        out = describe_runs(found, artifacts(), now)
        return JSONResponse({"dagId": DAG_ID, "now": now, "runs": out}, headers={"Cache-Control": "no-store"})

    @app.get("/api/runs/{run_id}/trials/{index}/files/{name:path}", dependencies=readers)
    def published_file(run_id: str, index: int, name: str) -> Response:
        """A file the run published, if its manifest lists it."""
        [record] = _records(1, run_id) or [None]
        if record is None:
            raise HTTPException(404, f"no run {run_id!r} of DAG {DAG_ID}")
        return published_file_response(record, index, name, artifacts())

    return app


def _artifacts_cache() -> Callable[[], Artifacts]:
    """A getter of the process's one artifacts cache, its AWS connection re-read from the settings every minute."""
    from isaaclab_pipeline.settings import get_setting
    from isaaclab_pipeline.ui.artifacts import Artifacts

    state: dict[str, Any] = {"artifacts": None, "loaded": 0.0}

    def artifacts() -> Artifacts:
        if state["artifacts"] is None or time.monotonic() - state["loaded"] > SETTINGS_TTL_S:
            conn = get_setting("aws_conn_id", "aws_default") or "aws_default"
            if state["artifacts"] is None or state["artifacts"].aws_conn_id != conn:
                state["artifacts"] = Artifacts(conn)
            state["loaded"] = time.monotonic()
        return state["artifacts"]

    return artifacts


def _records(limit: int, run_id: str | None) -> list[RunRecord]:
    """The newest ``limit`` runs of the DAG (or the one ``run_id``), from Airflow's database."""
    from airflow.utils.session import create_session

    from isaaclab_pipeline.ui.queries import fetch_runs

    with create_session() as session:
        return fetch_runs(session, limit, run_id)


def describe_runs(found: list[Any], cache: Any, now: float) -> list[dict[str, Any]]:
    """Each run as the page shows it; one that cannot be described shows its error (it must not hide the others)."""
    from isaaclab_pipeline.ui import runs
    from isaaclab_pipeline.ui.run_links import airflow_run_link

    out = []
    for record in found:
        try:
            out.append(runs.describe(record, cache, now, file_url))
        except Exception as exc:
            log.exception("runs view: run %s could not be described", record.run_id)
            out.append({"runId": record.run_id, "state": record.state, "trials": [], "steps": {},
                        "links": {"airflow": airflow_run_link(record.run_id)},
                        "problems": [f"{type(exc).__name__}: {str(exc)[:300]}"]})
    return out


def published_file_response(record: Any, index: int, name: str, cache: Any) -> Any:
    """The response serving one file a trial published, if its manifest lists it (sandboxed, never executed).

    :raises HTTPException: 404 (not published, not listed, gone), 413 (over ``MAX_FILE_BYTES``).
    """
    from fastapi import HTTPException
    from fastapi.responses import Response

    from isaaclab_pipeline import storage
    from isaaclab_pipeline.readers import manifest_files
    from isaaclab_pipeline.ui import runs

    published = record.xcoms.get(("publish_outputs", index, "return_value"))
    out_uri = published.get("outputUri") if isinstance(published, dict) else None
    if not out_uri:
        raise HTTPException(404, f"run {record.run_id!r} (trial {index}) has published nothing yet")
    manifest = cache.read_json(storage.join(out_uri, "manifest.json"), True,
                               runs.step_version(record, "publish_outputs", index)) or {}
    listed = manifest_files(manifest)
    if name not in listed and name != "manifest.json":
        raise HTTPException(404, f"{name!r} is not among the files run {record.run_id!r} published (manifest.json)")
    size = (listed.get(name) or {}).get("size") or 0
    if size > MAX_FILE_BYTES:
        raise HTTPException(413, f"{name} is {size} bytes; download it from {storage.join(out_uri, name)}")
    data = cache.read(storage.join(out_uri, name))
    if data is None:
        raise HTTPException(404, f"{name} is listed but not found under {out_uri}")
    kind = mimetypes.guess_type(name)[0] or ("text/plain" if name.endswith((".txt", ".csv")) else
                                             "application/octet-stream")
    inline = kind.startswith(("image/", "video/", "text/")) or kind == "application/json"
    disposition = "inline" if inline else f'attachment; filename="{Path(name).name}"'
    return Response(data, media_type=kind, headers={"Content-Disposition": disposition,
                                                    "X-Content-Type-Options": "nosniff",
                                                    "Content-Security-Policy": "sandbox"})


class LazyApp:
    """An ASGI app that builds the real one on its first request.

    Airflow loads plugins in every component (the scheduler, the dag processor, each task); only the api-server
    serves this app, so Airflow's API modules are imported there and nowhere else.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)
