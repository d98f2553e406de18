"""Command line of the pipeline: run the DAG locally on a conf, or run the demo.

    python -m isaaclab_tools.cli run --conf conf.json     # what `make run CONF=...` calls
    python -m isaaclab_tools.cli demo                      # what `make demo` calls
    python -m isaaclab_tools.cli demo-eval                 # what `make demo-eval` calls: demo + evaluation
    python -m isaaclab_tools.cli list-tasks [--package P]  # the Isaac Lab environment's task ids
    python -m isaaclab_tools.cli trigger --conf conf.json [--airflow-url URL | --mwaa-env NAME]
    python -m isaaclab_tools.cli status RUN_ID [--airflow-url URL | --mwaa-env NAME]

``${VAR}`` in a conf file is expanded from the environment (e.g. ``${ISAACLAB_PIPELINE_HOME}``), so example
confs work on any machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from isaaclab_pipeline.config import DAG_ID, job_uuid
from isaaclab_pipeline.readers import length_tag, read_json, reward_tag
from isaaclab_pipeline.settings import pipeline_home

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = REPO / "examples" / "envs" / "custom_cartpole"
DEMO_CONF = REPO / "examples" / "confs" / "custom_cartpole_train.json"


def load_conf(path: Path) -> dict[str, Any]:
    """Read a conf file, expanding ``${VAR}`` from the environment."""
    return json.loads(os.path.expandvars(path.read_text()))


def package_env(src: Path, dest: Path) -> Path:
    """Package an env project folder as the seed's user guide does (``tar -czf pkg.tar.gz -C parent folder``).

    Build leftovers (``build/``, ``*.egg-info``, ``__pycache__``) are left out.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    skip = {"build", "__pycache__", ".pytest_cache"}

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        return None if any(p in skip or p.endswith(".egg-info") for p in parts) else info

    with tarfile.open(dest, "w:gz") as tar:
        tar.add(src, arcname=src.name, filter=keep)
    return dest


def load_dag() -> Any:
    """The isaac-lab-training DAG as Airflow's DagBag parses it from ``dags/`` (import errors end the command)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    return bag.dags[DAG_ID]


def _ensure_db() -> None:
    """Create Airflow's metadata DB on first use (SQLite under AIRFLOW_HOME)."""
    home = Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow"))
    if not (home / "airflow.db").exists():
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, stdout=subprocess.DEVNULL)


def run_dag(conf: dict[str, Any]) -> tuple[str, str]:
    """Run the DAG in-process with ``dag.test`` (real Airflow: scheduler loop, XComs, retries); return state, run id."""
    _ensure_db()
    dag = load_dag()
    run = dag.test(run_conf=conf)
    return str(run.state), run.run_id


def report(output_uri: str, started: float) -> None:
    """Print the published tree, the headline metrics and the wall time."""
    from isaaclab_pipeline.storage import local_path

    out = local_path(output_uri)
    print(f"\nPublished files under {out}:")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(out)}  ({path.stat().st_size} bytes)")
    summary = read_json((out / "summary.json").read_bytes()) if (out / "summary.json").exists() else None
    summary = summary or {}
    if "episodes" in summary:  # an evaluation: summary.json holds the episode statistics
        ret, length = summary["return"], summary["length"]
        print(f"evaluation: {summary['episodes']} episodes, return mean {ret['mean']:.3f} (std {ret['std']:.3f}), "
              f"length mean {length['mean']:.1f}, success rate {summary.get('successRate')}")
    tags = summary.get("tags", {})
    reward, length = reward_tag(list(tags)), length_tag(list(tags))  # the library's headline tags
    for tag in (reward, length):
        if tag and tags[tag].get("last") is not None:  # non-finite values are null in summary.json
            print(f"{tag} at the last iteration ({tags[tag]['last_step']}): {tags[tag]['last']:.3f}")
    limit = episode_step_limit(out / "env-params.txt")
    last_length = tags[length].get("last") if length else None
    if limit and last_length is not None:
        share = last_length / limit
        print(f"episode step limit: {limit}; last mean episode length is {share:.0%} of it "
              f"({'balances' if share >= 0.9 else 'not yet balancing'})")
    print(f"wall time: {time.time() - started:.0f} s")
    print(f"outputs: {out}")


def episode_step_limit(env_params: Path) -> int | None:
    """Steps per episode from the run's env params: episode_length_s / (sim.dt * decimation)."""
    if not env_params.exists():
        return None
    import yaml

    # Isaac Lab dumps configs with python tags (slices, tuples); the plain values we need load safely
    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    params = yaml.load(env_params.read_text(), Loader=_Loader) or {}
    try:
        return round(params["episode_length_s"] / (params["sim"]["dt"] * params["decimation"]))
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def run_conf(conf: dict[str, Any], started: float) -> int:
    """Run the DAG on ``conf`` and report; return a process exit code."""
    state, run_id = run_dag(conf)
    print(f"\nDAG run {run_id}: {state}")
    if state != "success":
        print("The run failed; the failing task's log is above.", file=sys.stderr)
        return 1
    report(f"{output_location(conf).rstrip('/')}/{job_uuid(DAG_ID, run_id)}", started)
    return 0


def output_location(conf: dict[str, Any]) -> str:
    """Where a run of ``conf`` publishes: its ``outputS3Path``, else the deployment's default."""
    from isaaclab_pipeline.settings import PipelineSettings

    params = conf.get("parameters", conf)
    return params.get("outputS3Path") or PipelineSettings.load().default_output_uri


def demo_eval(started: float) -> int:
    """Train the example as ``demo`` does, then evaluate its last checkpoint (20 episodes, with a video)."""
    from isaaclab_pipeline.storage import local_path

    asset = package_env(EXAMPLE_ENV, pipeline_home() / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz")
    print(f"Packaged {EXAMPLE_ENV} as {asset}")
    train = load_conf(DEMO_CONF)
    params = train.get("parameters", train)
    state, run_id = run_dag(train)
    print(f"\nTraining DAG run {run_id}: {state}")
    if state != "success":
        return 1
    trained = local_path(f"{params['outputS3Path'].rstrip('/')}/{job_uuid(DAG_ID, run_id)}")
    checkpoint = max(trained.glob("checkpoints/model_*.pt"), key=lambda p: int(p.stem.split("_")[-1]))
    conf = {"trainingConfig": {"mode": "evaluate", "task": params["trainingConfig"]["task"], "rlLibrary": "rsl_rl",
                               "numEnvs": 16, "numEpisodes": 20, "recordVideo": True,
                               "policyS3Uri": checkpoint.as_uri()},
            "inputS3AssetFilePath": params["inputS3AssetFilePath"], "outputS3Path": params["outputS3Path"]}
    print(f"Evaluating {checkpoint} over 20 episodes with a video")
    state, run_id = run_dag(conf)
    print(f"\nEvaluation DAG run {run_id}: {state}")
    if state != "success":
        return 1
    out = local_path(f"{params['outputS3Path'].rstrip('/')}/{job_uuid(DAG_ID, run_id)}")
    summary = read_json((out / "summary.json").read_bytes()) or {}
    ret, length = summary["return"], summary["length"]
    print(f"{summary['episodes']} episodes: return mean {ret['mean']:.3f} (std {ret['std']:.3f}, min {ret['min']:.3f},"
          f" max {ret['max']:.3f}); length mean {length['mean']:.1f} (min {length['min']:.0f}, "
          f"max {length['max']:.0f})")
    for video in sorted(out.glob("videos/**/*.mp4")):
        print(f"video: {video}")
    print(f"wall time: {time.time() - started:.0f} s")
    print(f"outputs: {out}")
    return 0


def list_tasks(package: str | None) -> int:
    """Print the tasks of the local Isaac Lab environment (and of ``package``) and save the list for resolve."""
    from isaaclab_pipeline.resolve import known_tasks_path
    from isaaclab_pipeline.settings import PipelineSettings

    cmd = [PipelineSettings.load().isaaclab_python, "-m", "isaaclab_runner", "list-tasks", "--json"]
    cmd += ["--package", package] if package else []
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(proc.stderr[-4000:], file=sys.stderr)
        return proc.returncode
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    mirror = PipelineSettings.load().asset_mirror_uri
    served: dict[str, bool] = {}
    if mirror:  # which built-in tasks the deployment's asset mirror can serve (the others need NVIDIA's server)
        from isaaclab_pipeline.asset_mirror import servable

        served = servable(mirror, [t for ids in doc["sources"].values() for t in ids])
        print(f"asset mirror {mirror}: {sum(served.values())} of {len(served)} tasks served from it")
    for source, ids in doc["sources"].items():
        for task in ids:
            mark = ("\tmirror: yes" if served.get(task) else "\tmirror: no") if mirror else ""
            print(f"{task}\t{source}{mark}")
    for old, new in doc["aliases"].items():
        print(f"{old}\talias of {new}")
    path = known_tasks_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"saved to {path}: the resolve step now refuses unknown task ids of confs without an env package")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the command."""
    parser = argparse.ArgumentParser(prog="isaaclab_tools.cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the DAG on a conf file (local paths or file:// URIs)")
    run.add_argument("--conf", type=Path, required=True)
    demo = sub.add_parser("demo", help="package the example env and train it through the DAG")
    demo.add_argument("--started-at", type=float, default=None, help="epoch seconds the demo started (wall time)")
    demo_ev = sub.add_parser("demo-eval", help="the demo, then an evaluation of its policy with a video")
    demo_ev.add_argument("--started-at", type=float, default=None, help="epoch seconds the demo started (wall time)")
    tasks = sub.add_parser("list-tasks", help="list the tasks of the Isaac Lab environment (and of an env package)")
    tasks.add_argument("--package", default=None, help="env package to install and list too (path or URI)")
    # trigger/status go through Airflow's REST API (a running api-server or MWAA): docs/triggering.md
    trig = sub.add_parser("trigger", help="trigger the DAG on a conf through the REST API; print run id and link")
    trig.add_argument("--conf", type=Path, required=True)
    trig.add_argument("--run-id", default=None, help="the DAG run id (default: cli__<time>_<hex>)")
    stat = sub.add_parser("status", help="print a run's state and each step's")
    stat.add_argument("run_id")
    for p in (trig, stat):
        where = p.add_mutually_exclusive_group()
        where.add_argument("--airflow-url", help="api-server URL (default $AIRFLOW_URL or http://127.0.0.1:8080)")
        where.add_argument("--mwaa-env", help="MWAA environment name (mwaa:InvokeRestApi)")
    args = parser.parse_args(argv)
    if args.command in ("trigger", "status"):
        from isaaclab_tools import rest

        if args.command == "trigger":
            return rest.cmd_trigger(load_conf(args.conf), args.airflow_url, args.mwaa_env, args.run_id)
        return rest.cmd_status(args.run_id, args.airflow_url, args.mwaa_env)
    os.environ.setdefault("ISAACLAB_PIPELINE_HOME", str(pipeline_home()))

    if args.command == "run":
        return run_conf(load_conf(args.conf), time.time())
    if args.command == "list-tasks":
        return list_tasks(args.package)
    if args.command == "demo-eval":
        return demo_eval(args.started_at or time.time())
    started = args.started_at or time.time()
    asset = package_env(EXAMPLE_ENV, pipeline_home() / "assets" / "custom_cartpole" / "custom_cartpole.tar.gz")
    print(f"Packaged {EXAMPLE_ENV} as {asset}")
    return run_conf(load_conf(DEMO_CONF), started)


if __name__ == "__main__":
    sys.exit(main())
