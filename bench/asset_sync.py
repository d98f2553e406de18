"""The asset mirror's sync on a fresh host (cold: empty host cache) against the next job on that host (cached),
measured side by side in one run, alternating, against a moto S3 server on loopback as the mirror.

Two closures: the cartpole stand-ins (2 files, the guide's default task) and a synthetic closure of a larger
robot task (8 meshes of 16 MB and 40 files of 0.8 MB: ~160 MB). Prints the medians and the ratio; absolute
times only mean something on the job's own instance and S3, so compare ratios.

    .venvs/airflow/bin/python bench/asset_sync.py [--reps 5] [--out bench/results/cpu]
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "task_image"), str(REPO / "tests")]

from cpu_jobs import bench_arguments, write_summary  # noqa: E402

CLOSURES = {
    "cartpole": {"Isaac/IsaacLab/Robots/Classic/Cartpole/cartpole.usd": 2631,
                 "Isaac/IsaacLab/Environments/Grid/default_ground_plane_checker_v1/default_ground_plane.usda": 1480},
    "large-robot": {**{f"Isaac/Robots/Large/meshes/link_{i}.usdc": 16 << 20 for i in range(8)},
                    **{f"Isaac/Robots/Large/textures/t_{i}.png": 800 << 10 for i in range(40)}},
}


def main() -> int:
    """Fill a moto S3 mirror, then time cold and cached syncs of each closure, alternating."""
    args = bench_arguments(__doc__, reps=5).parse_args()
    from pipeline_env import moto_on_loopback

    with moto_on_loopback() as url:
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_DEFAULT_REGION="us-east-1")
        import boto3
        from isaaclab_runner import asset_mirror

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="mirror")
        files, tasks = {}, {}
        for task, closure in CLOSURES.items():
            for rel, size in closure.items():
                data = hashlib.sha256(rel.encode()).digest() * (size // 32) + b"\0" * (size % 32)
                s3.put_object(Bucket="mirror", Key=f"isaac/{rel}", Body=data)
                files[rel] = {"size": size, "sha256": hashlib.sha256(data).hexdigest()}
            tasks[task] = sorted(closure)
        manifest = {"version": 1, "files": files, "tasks": tasks, "assetRelease": "bench"}
        s3.put_object(Bucket="mirror", Key="isaac/asset-manifest.json", Body=json.dumps(manifest).encode())

        root = args.scratch or Path(tempfile.mkdtemp(prefix="bench-asset-sync-"))
        times: dict[str, dict[str, list[float]]] = {t: {"cold": [], "cached": []} for t in CLOSURES}
        for rep in range(args.reps):
            for task in CLOSURES:
                cache = root / f"host-{rep}-{task}"  # a fresh host each repetition
                for kind in ("cold", "cached"):
                    started = time.perf_counter()
                    result = asset_mirror.sync_task("s3://mirror/isaac", task, root / "job", cache)
                    times[task][kind].append(time.perf_counter() - started)
                    assert (result.fetched, result.cached) == ((len(CLOSURES[task]), 0) if kind == "cold"
                                                               else (0, len(CLOSURES[task])))
                asset_mirror.clear(cache)
    summary = {task: {kind: {"median_s": statistics.median(v), "all_s": v} for kind, v in kinds.items()}
               | {"files": len(CLOSURES[task]), "bytes": sum(CLOSURES[task].values())}
               for task, kinds in times.items()}
    out = args.out / "asset_sync"
    out.mkdir(parents=True, exist_ok=True)
    headline = {}
    for task, row in summary.items():
        cold, cached = row["cold"]["median_s"], row["cached"]["median_s"]
        print(f"{task}: {row['files']} files, {row['bytes'] / 1e6:.1f} MB: cold {cold:.3f} s, cached {cached:.3f} s")
        headline[f"{task} cold/cached"] = cold / cached
    write_summary(out, summary, headline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
