#!/usr/bin/env python
"""Benchmark: our TensorBoard → metrics converter vs EventAccumulator vs tbparse on one generated log.

Generates a run of ``--steps`` iterations × ``--tags`` scalar tags (default 20,000 × 50 = 1,000,000
scalars, ~53 MB), one event per scalar as torch's SummaryWriter.add_scalar writes them (rsl_rl, skrl),
in a temporary directory. Then times, each in a fresh interpreter so no reader benefits from another's
imports or garbage:

* ours: ``read_run`` (read, CRC-check and merge every scalar into per-tag step-sorted arrays, the same
  in-memory table the others produce), median of ``--repeat`` runs;
* ours: ``convert_run`` end to end (the above + metrics.csv + summary.json + reward_curve.png, every lazy
  import included: numpy, crc32c, msgspec, matplotlib), median of ``--repeat`` runs;
* TensorBoard's ``EventAccumulator`` with ``size_guidance={"scalars": 0, "tensors": 0}`` (keep all), reading
  only: it writes no CSV, so the convert ratio is conservative;
* tbparse's ``SummaryReader(...).scalars`` (and ``.tensors`` when ``--tensor-tags`` > 0).

Page cache is warmed first. Every (tag, step, value) of each reader is compared with ours (and wall_time
with EventAccumulator's), and every cell of the written metrics.csv, read back with ``float()``, with
EventAccumulator's values. The last lines are ``values_equal: true|false``,
``speedup_vs_event_accumulator: <float>`` (reading), ``convert_speedup_vs_event_accumulator <float>``
(EventAccumulator's reading / our whole conversion, wall clock) and ``convert_speedup_vs_event_accumulator_cpu
<float>`` (the same from each worker's CPU time: every reader here is single-threaded, so on an idle machine the two
agree, and on a shared one the CPU time is not stretched by other jobs as wall time is).

Run: ``.venvs/airflow/bin/python bench/tensorboard_convert.py`` (quick check: ``--steps 2000 --tags 10``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))
sys.path.insert(0, str(REPO / "task_image"))

T0 = 1_764_000_000.0
FIXED_TAGS = [
    "Train/mean_reward", "Train/mean_episode_length", "Loss/value_function", "Loss/surrogate", "Loss/entropy",
    "Loss/learning_rate", "Policy/mean_noise_std", "Perf/total_fps", "Perf/collection time", "Perf/learning_time",
]


def tag_names(count: int) -> list[str]:
    """rsl_rl-like tag names: the fixed ones, then Episode_Reward/... terms."""
    names = FIXED_TAGS[:count]
    names += [f"Episode_Reward/term_{i:02d}" for i in range(count - len(names))]
    return names


def generate(logdir: Path, steps: int, tags: int, tensor_tags: int) -> Path:
    """Write the benchmark log with TensorBoard's own record writer and protobufs.

    Uses ``RecordWriter`` (what ``EventFileWriter`` writes through) directly in this thread: the
    writer's queue thread roughly triples generation time for a million small events, the bytes are the same.
    The first ``tensor_tags`` tags are written as rank-0 tensors with the 'scalars' plugin (new style).
    """
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.record_writer import RecordWriter

    logdir.mkdir(parents=True, exist_ok=True)
    path = logdir / f"events.out.tfevents.{int(T0)}.{socket.gethostname()}.{os.getpid()}.0"
    rng = random.Random(0)
    names = tag_names(tags)
    with open(path, "wb") as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(wall_time=T0, file_version="brain.Event:2").SerializeToString())
        for it in range(steps):
            progress = it / max(steps - 1, 1)
            for j, tag in enumerate(names):
                if tag == "Train/mean_reward":
                    value = 200.0 * progress + rng.gauss(0.0, 5.0)
                elif tag == "Train/mean_episode_length":
                    value = 20.0 + 480.0 * progress + rng.gauss(0.0, 10.0)
                else:
                    value = rng.gauss(0.0, 1.0)
                wall = T0 + 1.0 + it * 0.5 + j * 1e-5
                if j < tensor_tags:
                    summary = scalar_pb(tag, value)
                else:
                    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
                writer.write(event_pb2.Event(wall_time=wall, step=it, summary=summary).SerializeToString())
        writer.flush()
    return path


# --- workers: each runs in its own interpreter and saves what it read to an .npz --------------------------


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _save(out: Path, table: dict[str, tuple[list | object, list | object, list | object]], seconds: float,
          import_seconds: float, peak_mb: float | None = None, cpu_seconds: float | None = None) -> None:
    import numpy as np

    tags = sorted(table)
    arrays = {}
    for i, tag in enumerate(tags):
        steps, walls, values = table[tag]
        arrays[f"s{i}"] = np.asarray(steps, dtype=np.int64)
        arrays[f"w{i}"] = np.asarray(walls, dtype=np.float64)
        arrays[f"v{i}"] = np.asarray(values, dtype=np.float64)
    np.savez(out.with_suffix(".npz"), **arrays)
    peak_mb = _peak_rss_mb() if peak_mb is None else peak_mb
    out.with_suffix(".json").write_text(json.dumps({"tags": tags, "seconds": seconds, "cpu_seconds": cpu_seconds,
                                                    "import_seconds": import_seconds,
                                                    "peak_rss_mb": peak_mb}))


def worker(kind: str, logdir: Path, out: Path, tensor_tags: int) -> None:
    """Time one reader on ``logdir`` and save its (tag, step, wall_time, value) table."""
    t_import = time.perf_counter()
    if kind in ("ours", "ours-full"):
        from isaaclab_pipeline.metrics import convert_run, read_run
    elif kind == "ea":
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        from tensorboard.util import tensor_util
    else:
        from tbparse import SummaryReader
    import_seconds = time.perf_counter() - t_import

    table: dict = {}
    peak_mb = None
    t, c = time.perf_counter(), time.process_time()
    if kind == "ours":
        run = read_run(logdir)
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        table = {tag: (s.steps, s.wall_times, s.values) for tag, s in run.series.items()}
    elif kind == "ours-full":
        result = convert_run(logdir, out.parent / f"{out.name}-out")
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        peak_mb = _peak_rss_mb()  # before the CSV is read back for the comparison
        sys.stderr.write(json.dumps(result.to_dict() | {"tags": len(result.tags)}) + "\n")
        table = csv_table(result.csv_path)
    elif kind == "ea":
        acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            events = acc.Scalars(tag)
            table[tag] = ([e.step for e in events], [e.wall_time for e in events], [e.value for e in events])
        # PluginTagToContent raises KeyError for a plugin no tag used
        scalar_plugin_tags = set(acc.PluginTagToContent("scalars")) if tensor_tags else set()
        for tag in sorted(scalar_plugin_tags & set(acc.Tags()["tensors"])):
            events = acc.Tensors(tag)
            table[tag] = ([e.step for e in events], [e.wall_time for e in events],
                          [float(tensor_util.make_ndarray(e.tensor_proto).item()) for e in events])
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
    else:
        reader = SummaryReader(str(logdir), pivot=False, extra_columns={"wall_time"})
        frames = [reader.scalars] + ([reader.tensors] if tensor_tags else [])
        seconds, cpu = time.perf_counter() - t, time.process_time() - c
        for df in frames:
            if df.empty:  # no column at all when a log has no value of that kind
                continue
            for tag, group in df.groupby("tag", sort=False):
                table[tag] = (group["step"].to_numpy(), group["wall_time"].to_numpy(),
                              group["value"].to_numpy(dtype="float64"))
    _save(out, table, seconds, import_seconds, peak_mb, cpu)


def csv_table(path: Path) -> dict:
    """metrics.csv read back: per tag column, the (step, NaN wall time, value) of its non-empty cells."""
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    table = {}
    for j, tag in enumerate(header[2:], start=2):
        cells = [(int(row[0]), float(row[j])) for row in rows if row[j] != ""]
        table[tag] = ([c[0] for c in cells], [float("nan")] * len(cells), [c[1] for c in cells])
    return table


def run_worker(kind: str, logdir: Path, work: Path, tensor_tags: int, name: str | None = None) -> dict:
    out = work / (name or kind)
    proc = subprocess.run([sys.executable, __file__, "--worker", kind, "--logdir", str(logdir), "--out", str(out),
                           "--tensor-tags", str(tensor_tags)], capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"worker {kind} failed:\n{proc.stderr}")
    info = json.loads(out.with_suffix(".json").read_text())
    info["stderr"] = proc.stderr
    return info


def load_table(work: Path, kind: str) -> dict:
    import numpy as np

    info = json.loads((work / kind).with_suffix(".json").read_text())
    data = np.load((work / kind).with_suffix(".npz"))
    return {tag: (data[f"s{i}"], data[f"w{i}"], data[f"v{i}"]) for i, tag in enumerate(info["tags"])}


def compare(ours: dict, other: dict, with_wall_time: bool) -> tuple[bool, str]:
    """Every (tag, step, value) equal (NaN == NaN); ``other`` is sorted by step first."""
    import numpy as np

    if ours.keys() != other.keys():
        return False, f"tags differ: {sorted(set(ours) ^ set(other))[:5]}"
    for tag, (steps, walls, values) in other.items():
        order = np.argsort(steps, kind="stable")
        o_steps, o_walls, o_values = ours[tag]
        if not np.array_equal(o_steps, steps[order]):
            return False, f"{tag}: steps differ"
        if not np.array_equal(o_values, values[order], equal_nan=True):
            return False, f"{tag}: values differ"
        if with_wall_time and not np.array_equal(o_walls, walls[order]):
            return False, f"{tag}: wall times differ"
    return True, "ok"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--tensor-tags", type=int, default=0, help="how many tags to write as tensor scalars")
    parser.add_argument("--repeat", type=int, default=3, help="runs of our read_run and convert_run (medians)")
    parser.add_argument("--skip-tbparse", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--logdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.logdir, args.out, args.tensor_tags)
        return

    with tempfile.TemporaryDirectory(prefix="tb-bench-") as tmp:
        root = Path(tmp)
        logdir, work = root / "run", root / "work"
        work.mkdir()
        t = time.perf_counter()
        path = generate(logdir, args.steps, args.tags, args.tensor_tags)
        gen_s = time.perf_counter() - t
        size = path.stat().st_size
        path.read_bytes()  # warm the page cache for every reader alike
        n = args.steps * args.tags
        print(f"log: {args.steps} steps x {args.tags} tags = {n} scalars ({args.tensor_tags} tensor tags), "
              f"1 file, {size / 1e6:.1f} MB, generated in {gen_s:.1f} s")
        from isaaclab_runner.caches import cpu_model  # stdlib only; the workers never import it

        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPU(s) {cpu_model()}, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)

        ours_runs = [run_worker("ours", logdir, work, args.tensor_tags) for _ in range(max(args.repeat, 1))]
        full_runs = [run_worker("ours-full", logdir, work, args.tensor_tags, f"ours-full-{i}")
                     for i in range(max(args.repeat, 1))]
        ea = run_worker("ea", logdir, work, args.tensor_tags)
        tbp = None if args.skip_tbparse else run_worker("tbparse", logdir, work, args.tensor_tags)
        report(work, n, ours_runs, full_runs, ea, tbp)


def report(work: Path, n: int, ours_runs: list[dict], full_runs: list[dict], ea: dict, tbp: dict | None) -> None:
    """Print each reader's time (the medians of ours), the ratios and whether every reader read the same values."""
    ours_s = statistics.median(r["seconds"] for r in ours_runs)
    ours_cpu = statistics.median(r["cpu_seconds"] for r in ours_runs)
    full_s = statistics.median(r["seconds"] for r in full_runs)
    full_cpu = statistics.median(r["cpu_seconds"] for r in full_runs)
    ours = load_table(work, "ours")
    ok_ea, why_ea = compare(ours, load_table(work, "ea"), with_wall_time=True)
    ok_tbp, why_tbp = (True, "skipped") if tbp is None else compare(ours, load_table(work, "tbparse"), True)
    ok_csv, why_csv = compare(load_table(work, "ours-full-0"), load_table(work, "ea"), with_wall_time=False)
    n_ours = sum(len(v[0]) for v in ours.values())

    def line(name: str, info: dict, seconds: float | None = None) -> None:
        s = info["seconds"] if seconds is None else seconds
        print(f"{name:<34} {s:8.3f} s  (CPU {info['cpu_seconds']:.3f} s)  {n / s / 1e6:6.2f} M scalars/s  "
              f"import {info['import_seconds']:.2f} s  "
              f"peak RSS {info['peak_rss_mb']:.0f} MB")

    print(f"ours read_run (median of {len(ours_runs)}: " + ", ".join(f"{r['seconds']:.3f}" for r in ours_runs)
          + "; CPU " + ", ".join(f"{r['cpu_seconds']:.3f}" for r in ours_runs) + ")")
    line("ours read_run", ours_runs[0] | {"cpu_seconds": ours_cpu}, ours_s)
    print(f"ours convert_run (median of {len(full_runs)}: " + ", ".join(f"{r['seconds']:.3f}" for r in full_runs)
          + "; CPU " + ", ".join(f"{r['cpu_seconds']:.3f}" for r in full_runs) + ")")
    line("ours convert_run (+csv/json/png)", full_runs[0] | {"cpu_seconds": full_cpu}, full_s)
    line("EventAccumulator (keep all)", ea)
    if tbp is not None:
        line("tbparse SummaryReader", tbp)
    print(f"scalars read by ours: {n_ours} (expected {n})")
    print(f"ratio EventAccumulator / ours read_run: {ea['seconds'] / ours_s:.1f}x")
    print(f"ratio EventAccumulator / ours convert_run: {ea['seconds'] / full_s:.1f}x")
    print(f"CPU-time ratios (each worker's process_time; on a shared machine they vary less than wall time): "
          f"read_run {ea['cpu_seconds'] / ours_cpu:.1f}x, convert_run {ea['cpu_seconds'] / full_cpu:.1f}x")
    if tbp is not None:
        print(f"ratio tbparse / ours read_run: {tbp['seconds'] / ours_s:.1f}x")
    print(f"ours == EventAccumulator (tag, step, wall_time, value): {why_ea}")
    print(f"ours == tbparse (tag, step, wall_time, value): {why_tbp}")
    print(f"metrics.csv == EventAccumulator (tag, step, value): {why_csv}")
    equal = ok_ea and ok_tbp and ok_csv and n_ours == n
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"values_equal: {'true' if equal else 'false'}")
    print(f"speedup_vs_event_accumulator: {ea['seconds'] / ours_s:.2f}")
    print(f"convert_speedup_vs_event_accumulator {ea['seconds'] / full_s:.2f}")
    print(f"convert_speedup_vs_event_accumulator_cpu {ea['cpu_seconds'] / full_cpu:.2f}")


if __name__ == "__main__":
    main()
