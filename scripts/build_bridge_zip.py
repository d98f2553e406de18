"""Build the VAMS bridge's Lambda zip: ``dist/vams_bridge.zip`` with the ``vams_bridge`` package and its own boto3.

The Lambda python3.12 runtime ships a boto3 of its own, updated on AWS's schedule; the bridge needs
``mwaa.invoke_rest_api`` (botocore 1.35.74, November 2024), so the zip carries the boto3 that
``vams_bridge/requirements.txt`` asks for. Lambda puts the zip's root (``/var/task``) before the runtime's
packages on ``sys.path``, so the zip's copy is the one imported.

Usage: ``python scripts/build_bridge_zip.py [--out dist/vams_bridge.zip]`` (``make bridge-zip``). Needs pip and
a package index; the zip's entries carry a fixed date, so the same sources and versions give the same bytes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = ROOT / "vams_bridge"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)
SKIP_PARTS = {"__pycache__", "bin"}


def build(out: Path, python: str = sys.executable) -> list[str]:
    """Write the zip at ``out``; return its entry names.

    :param out: the zip to write (replaced).
    :param python: the interpreter whose pip installs the requirements (Python 3.12, as the runtime).
    :raises subprocess.CalledProcessError: when pip fails.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp)
        # manylinux x86_64 wheels only: the zip runs on Lambda, not on the machine that builds it
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
                        "--target", str(target), "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
                        "--python-version", "3.12", "-r", str(BRIDGE / "requirements.txt")], check=True)
        files = [p for p in target.rglob("*") if p.is_file() and not SKIP_PARTS & set(p.relative_to(target).parts)]
        package = [p for p in (BRIDGE / "vams_bridge").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        entries = sorted([(p.relative_to(target).as_posix(), p) for p in files]
                         + [(p.relative_to(BRIDGE).as_posix(), p) for p in package])
        with zipfile.ZipFile(out, "w") as zf:
            for name, path in entries:
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, path.read_bytes())
    return [name for name, _ in entries]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the zip's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "vams_bridge.zip")
    args = parser.parse_args(argv)
    names = build(args.out.resolve())
    print(f"{args.out}  {args.out.stat().st_size} B  {len(names)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
