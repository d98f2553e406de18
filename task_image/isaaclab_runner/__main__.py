"""Command line of the task runner: ``python -m isaaclab_runner run --spec URI [--workdir DIR]``.

Also ``list-tasks [--package URI] [--json]`` and ``mirror-assets --mirror URI --tasks ID...`` (mirror_assets.py).

Exit codes are the contract with the compute backend: 0 success, 2 bad input (spec, package, task id),
1 any other failure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from isaaclab_runner import EXIT_USAGE, packages, staging_layout, storage
from isaaclab_runner.jobspec import load_spec


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the requested command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mirror-assets"]:  # its own options (mirror_assets.main), e.g. as a one-off Batch job
        from isaaclab_runner import mirror_assets

        return mirror_assets.main(argv[1:])
    parser = argparse.ArgumentParser(prog="isaaclab_runner", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one job spec")
    run.add_argument("--spec", required=True, help="job spec JSON: s3:// URI, file:// URI or path")
    run.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a new temp folder)")
    tasks = sub.add_parser("list-tasks", help="print the task ids registered in this environment")
    tasks.add_argument("--package", default=None, help="install this env package first, so its ids are listed")
    tasks.add_argument("--json", action="store_true", help='print {"sources": {source: [ids]}, "aliases": {...}}')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[runner] %(levelname)s %(message)s", stream=sys.stdout)

    if args.command == "list-tasks":
        return _list_tasks(args.package, args.json)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="isaaclab-job-"))
    try:
        spec = load_spec(storage.download(args.spec, workdir / staging_layout.SPEC).read_text())
    except Exception as exc:  # a spec we cannot read is bad input, not a crash
        print(f"[runner] ERROR: invalid job spec {args.spec}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from isaaclab_runner.runner import JobRunner

    return JobRunner(spec, workdir).run()


def _list_tasks(package: str | None, as_json: bool) -> int:
    """Print the registered task ids per source (the image's isaaclab_tasks, each env package).

    With ``package``, the package is installed first (as a job would), so its ids are listed too.
    """
    import json

    env = packages.JobEnvironment.current()
    try:
        if package:  # into a throw-away environment, as a job would
            workdir = Path(tempfile.mkdtemp(prefix="isaaclab-list-"))
            env = packages.JobEnvironment.create(workdir / "venv")
            packages.fetch_and_install(package, workdir, env)
        sources = packages.tasks_by_source(env.python)
    except packages.PackageError as exc:
        print(f"[runner] ERROR: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from isaaclab_runner.isaaclab_cli import TASK_ALIASES

    if as_json:
        known = {t for ids in sources.values() for t in ids}
        aliases = {old: new for old, new in TASK_ALIASES.items() if new in known}
        print(json.dumps({"sources": sources, "aliases": aliases}))  # the last line: pip's output may precede it
        return 0
    for source, ids in sources.items():
        print("\n".join(f"{task}\t{source}" for task in ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
