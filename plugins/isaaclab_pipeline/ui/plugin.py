"""The Airflow plugin of the runs view: a FastAPI app mounted at ``/isaaclab`` and two external views.

Airflow's plugin loader finds it through ``plugins/isaaclab_ui.py`` (a top-level file of the plugins folder; the
package itself is hidden from the loader by ``.airflowignore``, locally and in MWAA's plugins.zip). Importing this
module is cheap: every Airflow component loads plugins, only the api-server builds the app (``app.LazyApp``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from isaaclab_pipeline.compat import has_external_views
from isaaclab_pipeline.ui.app import URL_PREFIX, LazyApp

# The view needs Airflow 3.1: external views (its menu entries) and the auth dependencies' 3.1 signature
# (requires_access_dag(param_dag_id=...)). On 3.0 the plugin declares nothing; the DAG works without it.
RUNS_VIEW = has_external_views()


class IsaacLabUIPlugin(AirflowPlugin):
    """The runs view: in the navigation (all runs) and on each run's page (that run)."""

    name = "isaac_lab_training_ui"
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "Isaac Lab runs"}] if RUNS_VIEW else []
    external_views = [] if not RUNS_VIEW else [
        {"name": "Isaac Lab runs", "href": f"{URL_PREFIX}/runs", "destination": "nav", "url_route": "isaaclab-runs",
         "icon": f"{URL_PREFIX}/icon.svg", "nav_top_level": True},
        {"name": "Isaac Lab run", "href": f"{URL_PREFIX}/runs?run_id={{RUN_ID}}", "destination": "dag_run",
         "url_route": "isaaclab-run", "icon": f"{URL_PREFIX}/icon.svg"},
    ]
