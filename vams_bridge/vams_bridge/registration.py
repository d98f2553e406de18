"""Register this pipeline and a workflow using it in VAMS, in one step, from the bundle in ``vams_bridge/vamsSchema/``.

The bundle has VAMS's own registration shape (what VAMS imports for its built-in pipelines,
``backend/backend/common/workflows/vamsSchemaImport.py``): ``pipeline.json`` (``executionConfig``: Lambda,
``waitForCallback``, task and heartbeat timeouts; ``systemConfig``: input arity, asset scope, filters),
``workflow.json`` (the workflow's ``systemConfig`` and its one pipeline) and ``templates/*.json`` (configuration
templates with a ``configBody``). This module turns it into the ``vamscli`` calls that create them::

    python -m vams_bridge.registration --lambda-name vams-isaac-lab-training-bridge          # print the commands
    python -m vams_bridge.registration --lambda-name vams-isaac-lab-training-bridge --run    # and run them

Stdlib only, like the rest of the bridge.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA_ROOT = Path(__file__).resolve().parents[1] / "vamsSchema"


def load_bundle(root: Path = SCHEMA_ROOT, lambda_name: str | None = None) -> dict[str, Any]:
    """The bundle as VAMS's import reads it: ``{"pipeline", "workflow", "templates": [...]}``.

    :param lambda_name: the bridge's function name, put where VAMS's import injects it
        (``executionConfig.lambda.resourceId``); None keeps the bundle's.
    """
    bundle = {"pipeline": json.loads((root / "pipeline.json").read_text()),
              "workflow": json.loads((root / "workflow.json").read_text()),
              "templates": [json.loads(p.read_text()) for p in sorted((root / "templates").glob("*.json"))]}
    if lambda_name:
        bundle["pipeline"]["executionConfig"].setdefault("lambda", {})["resourceId"] = lambda_name
    return bundle


def vamscli_commands(bundle: dict[str, Any], workdir: Path, database_id: str = "GLOBAL") -> list[list[str]]:
    """The ``vamscli`` calls that create the bundle's pipeline, its templates and the workflow, in that order (a
    template names its pipeline, the workflow names the pipeline and its default template).

    :param workdir: where the JSON files the calls read are written.
    """
    pipeline, workflow = bundle["pipeline"], copy.deepcopy(bundle["workflow"])
    pid = pipeline["pipelineId"]

    def write(name: str, doc: Any) -> str:
        path = workdir / name
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
        return str(path)

    commands = [["vamscli", "pipeline", "create", "-d", database_id, "-p", pid, "-n", pipeline["pipelineName"],
                 "--category", pipeline.get("category", ""), "--description", pipeline.get("description", ""),
                 "--execution-config-file", write("execution-config.json", pipeline["executionConfig"]),
                 "--system-config-file", write("pipeline-system-config.json", pipeline["systemConfig"])]]
    for t in bundle["templates"]:
        cmd = ["vamscli", "pipeline", "template", "create", "-d", database_id, "-p", pid, "-t", t["templateId"],
               "-n", t["templateName"], "--description", t.get("description", ""),
               "--config-format", t.get("configFormat", "json"),
               "--config-body-file", write(f"{t['templateId']}.config.json", t["configBody"]),
               "--input-instructions", t.get("inputInstructions", "")]
        cmd += ["--allow-custom-edit"] if t.get("allowCustomEdit") else []
        cmd += ["--default"] if t.get("isDefault") else []
        commands.append(cmd)
    for ref in workflow["specifiedPipelines"]:
        ref["pipelineDatabaseId"] = database_id
    commands.append(["vamscli", "workflow", "create", "-d", database_id, "-w", workflow["workflowId"],
                     "-n", workflow["workflowName"], "--category", workflow.get("category", ""),
                     "--description", workflow.get("description", ""),
                     "--specified-pipelines-file", write("specified-pipelines.json", workflow["specifiedPipelines"]),
                     "--system-config-file", write("workflow-system-config.json", workflow["systemConfig"])])
    return commands


def main(argv: Sequence[str] | None = None) -> int:
    """Print (or run, with ``--run``) the registration commands."""
    parser = argparse.ArgumentParser(prog="python -m vams_bridge.registration", description=__doc__.split("\n")[0])
    parser.add_argument("--lambda-name", required=True, help="the bridge Lambda's name (must start with 'vams')")
    parser.add_argument("--database-id", default="GLOBAL", help="VAMS database to register in (default GLOBAL)")
    parser.add_argument("--run", action="store_true", help="run the vamscli commands (default: print them)")
    args = parser.parse_args(argv)
    if not args.lambda_name.startswith("vams"):
        parser.error(f"--lambda-name {args.lambda_name!r}: VAMS only invokes functions whose name starts with 'vams'")
    workdir = Path(tempfile.mkdtemp(prefix="vams-registration-"))
    commands = vamscli_commands(load_bundle(lambda_name=args.lambda_name), workdir, args.database_id)
    for cmd in commands:
        print(shlex.join(cmd))
        if args.run:
            done = subprocess.run(cmd, check=False)
            if done.returncode:
                print(f"failed ({done.returncode}); the files it read are in {workdir}", file=sys.stderr)
                return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
