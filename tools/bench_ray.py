"""Scaling out: rows/s, test log loss / accuracy and peak memory, local engine vs Ray with 1 and 2 workers.

Covtype-shaped data (tools/datagen.py: 54 features, locally different rules)
in Parquet shards; LLFM-JO with m = 50 anchors (the defaults); every
configuration runs in a fresh `streamfm train` process (``tools/harness.py``;
the Ray ones start their own local Ray instance sized to the machine). rows/s is
the training rows of an epoch over its seconds (validation excluded), taken
over all epochs, and apart for epoch 1 (which also pays Ray Data's start-up) and
the later ones. Writes docs/scaling.md.measured (the table docs/scaling.md shows).

    pip install ".[ray]"
    python tools/bench_ray.py [--rows 400000] [--epochs 3] [--sync-rows 16384]
"""
import argparse
import json
import os
import shutil
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
from tools import harness  # noqa: E402
from tools.datagen import covtype_blocks  # noqa: E402

# a child that runs the command line and prints its own peak RSS: the driver's alone (the process's
# rusage would also count the Ray processes it started and reaped)
CHILD = ("import resource, sys; from streamfm import cli; code = cli.main(sys.argv[1:]); "
         "print('PEAK_MIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr); "
         "sys.exit(code)")


def _write_shard(path: str, X, y) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {f"f{j}": X[:, j] for j in range(X.shape[1])}
    cols["label"] = y
    pq.write_table(pa.table(cols), path + ".tmp", compression="zstd", row_group_size=65_536)
    os.replace(path + ".tmp", path)


def make_data(root: str, rows: int, shards: int, test_rows: int) -> tuple[str, str]:
    """Train shards and a test file drawn from one generator (one seed: the same local rules)."""
    import numpy as np

    # the test rows are the generator's rows after the training rows: one test set per training set
    train_dir = os.path.join(root, f"train-{rows}-{shards}")
    test_dir = os.path.join(root, f"test-{test_rows}-after-{rows}")
    test = os.path.join(test_dir, "part-00000.parquet")
    if os.path.exists(test) and os.path.isdir(train_dir) and len(os.listdir(train_dir)) == shards:
        return train_dir, test_dir
    os.makedirs(train_dir, exist_ok=True)
    os.makedirs(test_dir, exist_ok=True)
    per = rows // shards
    blocks = covtype_blocks(per * shards + test_rows, seed=0, block=per)
    for s in range(shards):
        X, y = next(blocks)
        _write_shard(os.path.join(train_dir, f"part-{s:05d}.parquet"), X, y)
    rest = list(blocks)
    _write_shard(test, np.concatenate([X for X, _ in rest]), np.concatenate([y for _, y in rest]))
    return train_dir, test_dir


def run(name: str, train_dir: str, test_dir: str, model: str, epochs: int, extra: list[str]) -> dict:
    # --early-stop 0: every epoch runs (the validation set is the test set)
    cmd = [sys.executable, "-c", CHILD, "train", train_dir, "--model", model, "--valid", test_dir,
           "--epochs", str(epochs), "--early-stop", "0", "-q", *extra]
    # Ray starts its workers at nice 15; on a machine shared with other work that starves
    # them against the local engine's process (nice 0): compare at equal priority
    rec = harness.run(cmd, cwd=ROOT, env={"RAY_worker_niceness": "0"}, check=True, what=name)
    wall = rec.wall
    cores_busy = rec.machine_busy / wall  # the whole machine: driver, workers, Ray, the rest
    driver_peak = float(rec.stderr_values("PEAK_MIB")["PEAK_MIB"])
    with open(os.path.join(model, "metrics.jsonl")) as fh:
        recs = [json.loads(ln) for ln in fh if ln.strip()]
    steady = recs[1:] or recs
    out = {"name": name, "load5": rec.load_after[1],  # the 5-minute load average after the run
           "rows_per_s": sum(r["rows"] for r in recs) / sum(r["seconds"] for r in recs),
           "steady_rows_per_s": sum(r["rows"] for r in steady) / sum(r["seconds"] for r in steady),
           "first_epoch_rows_per_s": recs[0]["rows_per_second"],
           "log_loss": recs[-1]["valid"]["log_loss"], "accuracy": recs[-1]["valid"]["accuracy"],
           "driver_peak_mib": driver_peak, "worker_peak_mib": recs[-1].get("worker_peak_rss_mib"),
           "wall_s": wall, "cores_busy": cores_busy, "epochs": len(recs),
           "epoch_rows_per_s": [r["rows_per_second"] for r in recs],
           "steady": _where_time_went(steady)}
    print(json.dumps(out), flush=True)
    return out


def _where_time_went(recs: list[dict]) -> dict:
    """Seconds of the given epochs: in all, in the driver's rounds, each worker's training and input wait."""
    out = {"epoch_s": sum(r["seconds"] for r in recs)}
    if "round_seconds" in recs[0]:  # the Ray engine
        out["round_s"] = sum(r["round_seconds"] for r in recs)
        out["worker_round_s"] = [sum(x) for x in zip(*(r["worker_round_seconds"] for r in recs))]
        out["worker_wait_s"] = [sum(x) for x in zip(*(r["worker_input_wait_seconds"] for r in recs))]
    else:
        out["wait_s"] = sum(r.get("input_wait_seconds", 0.0) for r in recs)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--test-rows", type=int, default=50_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--sync-rows", type=int, default=0, help="0: the engine's default")
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-data", "ray"))
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "scaling.md"))
    ap.add_argument("--only", default="", help="comma-separated configuration numbers: 0 local, 1 and 2 Ray workers (a quick look; no table)")
    args = ap.parse_args()
    train_dir, test_dir = make_data(args.work, args.rows, args.shards, args.test_rows)
    sync = ["--sync-rows", str(args.sync_rows)] if args.sync_rows else []
    configs = [("local", []), ("ray, 1 worker", ["--engine", "ray", "--workers", "1", *sync]),
               ("ray, 2 workers", ["--engine", "ray", "--workers", "2", *sync])]
    if args.only:
        configs = [c for i, c in enumerate(configs) if str(i) in args.only.split(",")]
    results = []
    for i, (name, extra) in enumerate(configs):
        model = os.path.join(args.work, f"model-{i}")
        shutil.rmtree(model, ignore_errors=True)
        results.append(run(name, train_dir, test_dir, model, args.epochs, extra))
    if args.only:
        return
    local, one, two = results
    cmd = "python tools/bench_ray.py" + "".join(
        f" --{k.replace('_', '-')} {getattr(args, k)}" for k in ("rows", "shards", "test_rows", "epochs", "sync_rows"))
    lines = [f"Command: `{cmd}` on this machine ({os.cpu_count()} cores), LLFM-JO, m = 50, r = 10, "
             f"{args.rows:,} Covtype-shaped training rows in {args.shards} Parquet shards, "
             f"{args.test_rows:,} test rows, {args.epochs} epochs.", "",
             "| engine | rows/s (all epochs) | rows/s (epoch 1) | rows/s (epochs 2..) | test log loss | test accuracy | "
             "peak RSS per worker (MiB) | driver peak RSS (MiB) | wall s | cores busy (whole run) | 5-min load after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        workers = ", ".join(f"{m:.0f}" for m in r["worker_peak_mib"]) if r["worker_peak_mib"] else "(in the driver)"
        lines.append(f"| {r['name']} | {r['rows_per_s']:,.0f} | {r['first_epoch_rows_per_s']:,.0f} | "
                     f"{r['steady_rows_per_s']:,.0f} | "
                     f"{r['log_loss']:.4f} | {100 * r['accuracy']:.2f}% | {workers} | {r['driver_peak_mib']:.0f} | "
                     f"{r['wall_s']:.0f} | {r['cores_busy']:.2f} of {os.cpu_count()} | {r['load5']:.1f} |")
    lines += ["", "Where the seconds of epochs 2.. went: the driver's rounds (each ends with its slowest worker; "
              "the rest of the epoch is merging, broadcasting and checkpoints), each worker's own round time, "
              "and of that its wait for input (reading, decoding, shuffling, standardising).", "",
              "| engine | epoch s | rounds s | worker round s | worker input wait s |", "|---|---|---|---|---|"]
    for r in results:
        st = r["steady"]
        if "round_s" in st:
            lines.append(f"| {r['name']} | {st['epoch_s']:.1f} | {st['round_s']:.1f} | "
                         f"{', '.join(f'{x:.1f}' for x in st['worker_round_s'])} | "
                         f"{', '.join(f'{x:.1f}' for x in st['worker_wait_s'])} |")
        else:
            lines.append(f"| {r['name']} | {st['epoch_s']:.1f} | | | {st['wait_s']:.1f} |")
    lines += ["",
              f"- 2 workers / 1 worker: {two['rows_per_s'] / one['rows_per_s']:.2f}x rows/s "
              f"(target >= 1.5x), test log loss {two['log_loss']:.4f} vs {one['log_loss']:.4f}.",
              f"- 1 Ray worker / local engine: {one['rows_per_s'] / local['rows_per_s']:.2f}x rows/s "
              f"(target >= 0.75x)."]
    write_measured(lines, args.out)


def write_measured(lines, out: str) -> None:
    """Print the table and write it to ``out`` + ".measured" (the page quotes it from there)."""
    text = "\n".join(lines) + "\n"
    print(text)
    with open(out + ".measured", "w") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
