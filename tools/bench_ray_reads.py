"""What Ray Data's reading costs the machine, apart from training: a dataset per epoch against one split.

Consumer actors that only count rows (optionally sleeping to go at a
training-like pace) read the shards of ``bench_ray.py`` for several epochs
through ``streaming_split``, as the Ray engine does:

- ``per-epoch``: a new ``read_parquet`` dataset and split every epoch (the
  engine's way on Ray < 2.54);
- ``per-run``: one dataset with the engine's per-epoch shard order
  (``EpochShardOrder``) and one split, read again every epoch (the engine's
  way on Ray >= 2.54).

Each mode runs with the engine's Ray Data settings for it (``data_context``),
so they differ in the read-ahead budget too: 1 GiB (``READ_AHEAD_BYTES``) per
epoch's dataset, Ray Data's own budget for the split per run.

It prints, per mode, the wall time, the whole machine's busy CPU seconds
(``/proc/stat``, read by ``tools/harness.py``) and those of the split
coordinator processes, then every Ray process's CPU seconds by its role (Ray Data's stats and autoscaling
actors, the read tasks' worker processes, ...), and writes the tables to
docs/scaling-reads.md.measured.

    python tools/bench_ray_reads.py [--rows 2000000] [--epochs 3] [--consumers 1] [--pace 0]

``--pace R``: each consumer sleeps as if it trained R rows a second (0: no
sleep); with a pace below the reading speed, Ray Data holds blocks back and
its scheduling loop runs the whole time.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from tools.bench_ray import write_measured  # noqa: E402  (shared with bench_ray)
from tools.harness import machine_busy_seconds  # noqa: E402


#: the processes' roles, by what their command lines contain (Ray names a worker process after
#: its actor or task: ``ray::SplitCoordinator``, ``ray::IDLE`` between tasks)
ROLES = (("SplitCoordinator", "split coordinator"), ("_StatsActor", "Ray Data stats actor"),
         ("_AutoscalingCoordinatorActor", "Ray Data autoscaling actor"), ("Consumer", "consumer"),
         ("ray::DashboardAgent", "other Ray"), ("ray::RuntimeEnvAgent", "other Ray"),
         ("ray::", "read tasks (task workers)"), ("raylet", "raylet"), ("gcs_server", "GCS"))


def process_cpu() -> dict:
    """CPU seconds so far of this machine's Ray processes (and this one), by pid: (role, seconds)."""
    import psutil

    out = {}
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            role = next((name for key, name in ROLES if key in cmd), None)
            if role is None and p.info["pid"] == os.getpid():
                role = "driver"
            if role is None and "ray" in cmd:
                role = "other Ray"
            if role is not None:
                t = p.cpu_times()
                out[p.info["pid"]] = (role, t.user + t.system)
        except psutil.Error:
            pass
    return out


def run(mode: str, files, epochs: int, consumers: int, pace: float) -> dict:
    import ray

    from streamfm.engines.ray import data as ray_data
    from streamfm.io.sources import open_source

    @ray.remote(num_cpus=0.01)
    class Consumer:
        def eat(self, split):
            n = 0
            for t in split.iter_batches(batch_size=65536, batch_format="pyarrow", prefetch_batches=1):
                n += t.num_rows
                if pace:
                    time.sleep(t.num_rows / pace)
            return n

    source = open_source(files)
    opts = argparse.Namespace(shuffle=True, workers=consumers)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with ray_data.data_context(ray, per_run=mode == "per-run"):
            eaters = [Consumer.remote() for _ in range(consumers)]
            ray.get([e.__ray_ready__.remote() for e in eaters])
            time.sleep(2)
            before = process_cpu()
            b0, t0, seen = machine_busy_seconds(), time.monotonic(), {}
            rows = 0
            if mode == "per-run":
                ds = ray_data.make_datasets(ray, source, opts, 0, range(epochs), per_run=True)[0]
                splits = ds.streaming_split(consumers, equal=True)
            for epoch in range(epochs):
                if mode == "per-epoch":
                    ds = ray_data.make_datasets(ray, source, opts, 0, range(epoch, epoch + 1), per_run=False)[epoch]
                    splits = ds.streaming_split(consumers, equal=True)
                refs = [e.eat.remote(s) for e, s in zip(eaters, splits)]
                while True:  # coordinators end with their epoch (per-epoch): sample them while alive
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0.5)
                    seen.update(process_cpu())
                    if len(ready) == len(refs):
                        break
                rows += sum(ray.get(refs))
            wall = time.monotonic() - t0
            seen.update(process_cpu())
            busy = machine_busy_seconds() - b0
    finally:
        ray.shutdown()
    by_role = {}
    for pid, (role, cpu) in seen.items():  # a process that existed before the run counts from then
        by_role[role] = by_role.get(role, 0.0) + cpu - before.get(pid, (role, 0.0))[1]
    coordinators = [pid for pid, (role, _) in seen.items() if role == "split coordinator"]
    return {"mode": mode, "rows": rows, "wall_s": wall, "machine_cpu_s": busy,
            "coordinator_cpu_s": by_role.get("split coordinator", 0.0), "coordinators": len(coordinators),
            "cpu_by_role": by_role}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=1)
    ap.add_argument("--pace", type=float, default=0.0, help="rows/s each consumer takes (0: as fast as it can)")
    ap.add_argument("--reps", type=int, default=2, help="alternations of the two modes")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-data", "ray"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "scaling-reads.md"))
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.work, f"train-{args.rows}-{args.shards}", "*.parquet")))
    if not files:
        sys.exit(f"no shards under {args.work}/train-{args.rows}-{args.shards}: run tools/bench_ray.py "
                 f"--rows {args.rows} --shards {args.shards} first (it writes them)")
    results = []
    for rep in range(args.reps):
        for mode in ("per-epoch", "per-run"):
            r = run(mode, files, args.epochs, args.consumers, args.pace)
            print(r, flush=True)
            results.append(r)
    cmd = " ".join(["python tools/bench_ray_reads.py", f"--rows {args.rows}", f"--shards {args.shards}",
                    f"--epochs {args.epochs}", f"--consumers {args.consumers}", f"--pace {args.pace:g}",
                    f"--reps {args.reps}"])
    lines = [f"Command: `{cmd}` on this machine ({os.cpu_count()} cores).", "",
             "| mode | rows | wall s | machine CPU s | split coordinators | their CPU s |",
             "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['mode']} | {r['rows']:,} | {r['wall_s']:.1f} | {r['machine_cpu_s']:.1f} | "
                     f"{r['coordinators']} | {r['coordinator_cpu_s']:.1f} |")
    # where the CPU went, process by process (start-ups included: the processes Ray Data starts
    # for a run are made after the first sample)
    roles = list(dict.fromkeys([name for _, name in ROLES if name != "other Ray"] + ["driver", "other Ray"]))
    lines += ["", "CPU seconds by process over the same runs (each process from the run's start):", "",
              "| mode | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    for r in results:
        lines.append(f"| {r['mode']} | " + " | ".join(f"{r['cpu_by_role'].get(k, 0.0):.1f}" for k in roles) + " |")
    write_measured(lines, args.out)


if __name__ == "__main__":
    main()
