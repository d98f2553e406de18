"""Build the Amazon MWAA bundle: ``dist/mwaa/{dags/, plugins.zip, requirements.txt}``.

MWAA loads three things from its S3 bucket: the ``dags/`` folder, ``plugins.zip`` (unpacked into
``/usr/local/airflow/plugins``, which is on ``sys.path``) and ``requirements.txt`` (installed by pip under
the ``--constraint`` line it carries). This script writes exactly those, from the repository:

- ``dags/``: the DAG files of ``dags/`` (and ``.airflowignore`` if there is one);
- ``plugins.zip``: the ``isaaclab_pipeline`` package, plus a copy of ``include/schemas`` at
  ``isaaclab_pipeline/schemas/`` (``schemas.schemas_dir()`` looks there first, since ``include/`` is not
  deployed), the top-level ``plugins/*.py`` files (the ``AirflowPlugin`` declarations, which import from the
  package), and an ``.airflowignore`` at its root (``plugins/.airflowignore``, else one line) that hides the
  package from Airflow's plugin loader: the loader imports every ``.py`` of the plugins folder as a top-level
  module named after the file (``config``, ``settings``, ``storage``...), which would run our modules twice and
  shadow same-named modules of other DAGs on a shared environment. The package is imported as
  ``isaaclab_pipeline`` from ``sys.path`` (MWAA puts the plugins folder there);
- ``requirements.txt``: the MWAA Airflow version's constraints line, then the Airflow side's own
  ``requirements.txt``.

No startup script is written: nothing needs to run before the scheduler starts (no OS packages, no
environment variables that a Variable can't carry).

Usage: ``python scripts/build_mwaa_bundle.py [--out dist/mwaa] [--airflow-version 3.3.1] [--python 3.12]``
(``make mwaa-bundle AIRFLOW_VERSION=3.0.6``). Only MWAA's 3.x images are accepted (``MWAA_AIRFLOW_VERSIONS``):
each is tested under its own constraints file (``tests/mwaa/``). Stdlib only, so it runs with any Python 3.10+.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# MWAA's Airflow 3.x images (aws/amazon-mwaa-docker-images), all on Python 3.12; the newest is the default.
# Keep in step with isaaclab_pipeline.compat.SUPPORTED_AIRFLOW (a test checks).
MWAA_AIRFLOW_VERSIONS = ("3.0.6", "3.2.1", "3.3.1")
MWAA_AIRFLOW_VERSION = MWAA_AIRFLOW_VERSIONS[-1]
MWAA_PYTHON_VERSION = "3.12"
PACKAGE = "isaaclab_pipeline"
# Fixed timestamp for zip entries: the same sources give a byte-identical plugins.zip, so S3 object
# versions (and MWAA updates) change only when code does.
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
SKIP_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
# plugins.zip's .airflowignore: one line that hides the package in both ignore syntaxes ([core]
# dag_ignore_file_syntax "glob", Airflow 3's default, matches the folder; "regexp" matches every path under it).
PLUGINS_AIRFLOWIGNORE = f"{PACKAGE}/\n"


def constraints_url(airflow_version: str, python_version: str) -> str:
    """Return Airflow's published constraints file for one Airflow and Python version.

    :param airflow_version: Airflow version of the MWAA environment, e.g. ``3.3.1``.
    :param python_version: its Python ``major.minor``, e.g. ``3.12``.
    """
    return (
        "https://raw.githubusercontent.com/apache/airflow/"
        f"constraints-{airflow_version}/constraints-{python_version}.txt"
    )


def check_version(airflow_version: str, python_version: str) -> None:
    """Refuse an Airflow or Python version no MWAA 3.x image runs (its bundle would be untested).

    :raises ValueError: naming the version and the supported ones.
    """
    if airflow_version not in MWAA_AIRFLOW_VERSIONS:
        raise ValueError(f"Airflow {airflow_version} is not supported: MWAA's 3.x images run "
                         f"{', '.join(MWAA_AIRFLOW_VERSIONS)} (docs/deploy.md, Airflow versions)")
    if python_version != MWAA_PYTHON_VERSION:
        raise ValueError(f"Python {python_version} is not supported: MWAA's 3.x images run {MWAA_PYTHON_VERSION}")


def _wanted(path: Path) -> bool:
    return path.is_file() and not (SKIP_PARTS & set(path.parts)) and path.suffix not in SKIP_SUFFIXES


def _zip_write(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
    info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def build_plugins_zip(dest: Path, plugins_dir: Path, schemas_dir: Path) -> list[str]:
    """Write ``plugins.zip`` with the pipeline package, its schemas and ``.airflowignore``; return the names.

    :param dest: the zip file to write.
    :param plugins_dir: the folder holding the ``isaaclab_pipeline`` package.
    :param schemas_dir: ``include/schemas``, copied to ``isaaclab_pipeline/schemas/``.
    :raises FileNotFoundError: when the package or the schemas are missing.
    """
    package = plugins_dir / PACKAGE
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"{package}/__init__.py not found: run from a checkout of isaac-lab-training")
    schemas = sorted(schemas_dir.glob("*.schema.json"))
    if not schemas:
        raise FileNotFoundError(f"no *.schema.json in {schemas_dir}")
    ignore = plugins_dir / ".airflowignore"
    ignore_text = ignore.read_text() if ignore.is_file() else PLUGINS_AIRFLOWIGNORE
    if not {f"{PACKAGE}/", PACKAGE} & {line.strip() for line in ignore_text.splitlines()}:
        raise ValueError(f"{ignore} must hide {PACKAGE}/ from the plugin loader")
    names: list[str] = [".airflowignore"]
    with zipfile.ZipFile(dest, "w") as zf:
        _zip_write(zf, ".airflowignore", ignore_text.encode())
        for path in sorted(p for p in plugins_dir.glob("*.py") if _wanted(p)):  # the plugin declarations
            _zip_write(zf, path.name, path.read_bytes())
            names.append(path.name)
        for path in sorted(p for p in package.rglob("*") if _wanted(p)):
            arcname = path.relative_to(plugins_dir).as_posix()
            _zip_write(zf, arcname, path.read_bytes())
            names.append(arcname)
        for path in schemas:
            arcname = f"{PACKAGE}/schemas/{path.name}"
            _zip_write(zf, arcname, path.read_bytes())
            names.append(arcname)
    return names


def bundle_requirements(requirements: Path, airflow_version: str, python_version: str) -> str:
    """Return the bundle's ``requirements.txt``: the constraints line, then the Airflow side's requirements.

    :param requirements: the repository's ``requirements.txt`` (the Airflow workers' needs).
    :param airflow_version: MWAA's Airflow version, for the constraints URL.
    :param python_version: MWAA's Python ``major.minor``.
    :raises ValueError: when the file pins Airflow itself (MWAA brings its own; pip would fight it), or when
        ``airflow_version`` is not one of MWAA's 3.x images.
    """
    check_version(airflow_version, python_version)
    lines = [f"--constraint \"{constraints_url(airflow_version, python_version)}\""]
    for raw in requirements.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split(";")[0].split("[")[0]
        for op in ("==", ">=", "<=", "~=", "!=", ">", "<"):
            name = name.split(op)[0]
        if name.strip().lower().replace("_", "-") == "apache-airflow":
            raise ValueError(f"{requirements}: drop the apache-airflow line; MWAA installs Airflow itself")
        lines.append(line)
    return "\n".join(lines) + "\n"


def build(out: Path, airflow_version: str = MWAA_AIRFLOW_VERSION, python_version: str = MWAA_PYTHON_VERSION,
          root: Path = ROOT) -> Path:
    """Write the bundle under ``out`` (replacing it) and return ``out``.

    :param out: the bundle folder, usually ``dist/mwaa``.
    :param airflow_version: MWAA's Airflow version.
    :param python_version: MWAA's Python ``major.minor``.
    :param root: the repository root.
    :raises ValueError: for a version no MWAA 3.x image runs (before anything is written).
    """
    check_version(airflow_version, python_version)
    if out.exists():
        shutil.rmtree(out)
    dags_out = out / "dags"
    dags_out.mkdir(parents=True)
    dag_files = sorted(p for p in (root / "dags").iterdir() if _wanted(p))
    if not any(p.suffix == ".py" for p in dag_files):
        raise FileNotFoundError(f"no DAG files in {root / 'dags'}")
    for path in dag_files:
        shutil.copy2(path, dags_out / path.name)
    build_plugins_zip(out / "plugins.zip", root / "plugins", root / "include" / "schemas")
    (out / "requirements.txt").write_text(
        bundle_requirements(root / "requirements.txt", airflow_version, python_version))
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints what was written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "mwaa")
    parser.add_argument("--airflow-version", default=MWAA_AIRFLOW_VERSION, choices=MWAA_AIRFLOW_VERSIONS)
    parser.add_argument("--python", default=MWAA_PYTHON_VERSION, dest="python_version")
    args = parser.parse_args(argv)
    out = build(args.out.resolve(), args.airflow_version, args.python_version)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"{path.relative_to(out.parent)}  {path.stat().st_size} B  sha256:{_sha256(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
