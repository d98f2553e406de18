"""What differs between the Airflow 3.x versions MWAA runs, in one place.

MWAA's images run Airflow 3.0.6, 3.2.1 and 3.3.1 (aws/amazon-mwaa-docker-images). The pipeline supports all
three; ``check_airflow_version`` refuses anything else at parse time, naming the version, so a deployment on an
untested Airflow fails loudly in the DAG's import error rather than in the middle of a run.

- The task exceptions moved to ``airflow.sdk.exceptions`` in 3.1; ``airflow.exceptions`` still has them on 3.3
  but warns (deprecated), and 3.0 has them only there.
- Plugins' ``external_views`` (the runs view's entries in the navigation and on a run's page) came in 3.1; on
  3.0 the view's FastAPI app is still served at ``/isaaclab/runs``, without the menu entries.
"""

from __future__ import annotations

import os
import re
from importlib.metadata import PackageNotFoundError, version

try:
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException

__all__ = ["AirflowException", "AirflowFailException", "AirflowSkipException", "SUPPORTED_AIRFLOW",
           "UnsupportedAirflowError", "airflow_version", "check_airflow_version", "has_external_views"]

# MWAA's 3.x images, each tested by tests/mwaa/ under that image's own constraints (tests/fixtures/mwaa/). A
# local or self-managed Airflow of the same minor line (3.3.2 in .venvs/airflow) is accepted too.
SUPPORTED_AIRFLOW = ("3.0.6", "3.2.1", "3.3.1")
SUPPORTED_MINORS = ("3.0", "3.2", "3.3")
# A deployment that knowingly runs another version sets this Variable (or AIRFLOW_VAR_ form) to that version.
ALLOW_VARIABLE = "AIRFLOW_VAR_ISAACLAB_ALLOW_AIRFLOW_VERSION"


class UnsupportedAirflowError(RuntimeError):
    """The running Airflow is not one the pipeline is tested on."""


def airflow_version() -> str:
    """Return the installed ``apache-airflow`` version (``apache-airflow-core`` where only that is installed)."""
    for dist in ("apache-airflow", "apache-airflow-core"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    import airflow

    return airflow.__version__


def _minor(ver: str) -> str:
    match = re.match(r"(\d+)\.(\d+)", ver)
    return f"{match.group(1)}.{match.group(2)}" if match else ver


def check_airflow_version(ver: str | None = None) -> str:
    """Return the Airflow version if the pipeline supports it; raise, naming it, otherwise.

    Supported: the minor lines of MWAA's 3.x images (``SUPPORTED_MINORS``). 3.1 has no MWAA image and is not
    tested; 2.x lacks ``airflow.sdk``. The environment variable ``AIRFLOW_VAR_ISAACLAB_ALLOW_AIRFLOW_VERSION``
    set to exactly the running version lets an operator take that risk on purpose.

    :param ver: the version to check; the installed one when omitted.
    :raises UnsupportedAirflowError: when the version is outside the supported lines.
    """
    ver = ver or airflow_version()
    if _minor(ver) in SUPPORTED_MINORS or os.environ.get(ALLOW_VARIABLE, "").strip() == ver:
        return ver
    raise UnsupportedAirflowError(
        f"isaac-lab-training does not support Airflow {ver}: it is tested on MWAA's Airflow "
        f"{', '.join(SUPPORTED_AIRFLOW)} (the {', '.join(SUPPORTED_MINORS)} lines); use one of those, or set "
        f"{ALLOW_VARIABLE}={ver} to run it untested (docs/deploy.md, Airflow versions)")


def has_external_views(ver: str | None = None) -> bool:
    """Whether this Airflow shows plugins' ``external_views`` (3.1 and later)."""
    major, minor = (int(p) for p in _minor(ver or airflow_version()).split("."))
    return (major, minor) >= (3, 1)
