"""Command line of the task runner: ``python -m isaaclab_runner run --spec URI [--workdir DIR]``.

Exit codes are the contract with the compute backend: 0 success, 2 bad input (spec, package, task id),
1 any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from isaaclab_runner import EXIT_USAGE, packages, storage
from isaaclab_runner.jobspec import load_spec


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the requested command."""
    parser = argparse.ArgumentParser(prog="isaaclab_runner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one job spec")
    run.add_argument("--spec", required=True, help="job spec JSON: s3:// URI, file:// URI or path")
    run.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temp folder)")
    sub.add_parser("list-tasks", help="print the task ids registered in this environment")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[runner] %(levelname)s %(message)s", stream=sys.stdout)

    if args.command == "list-tasks":
        print("\n".join(packages.registered_tasks()))
        return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isaaclab-job-"))
    try:
        spec = load_spec(storage.download(args.spec, workdir / "spec.json").read_text())
    except Exception as exc:  # a spec we cannot read is bad input, not a crash
        print(f"[runner] ERROR: invalid job spec {args.spec}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from isaaclab_runner.runner import JobRunner

    return JobRunner(spec, workdir).run()


if __name__ == "__main__":
    sys.exit(main())
