"""LLFM at click-log width with the hashed parameter store: docs/clicklog.md.

Generated CTR data (``tools/datagen.py``, seed 7): 30 categorical fields (Zipf-distributed values) hashed
into ``--features`` (default 2^24) features, 30 non-zeros a row (value 1), labels from a logistic model
with interactions between fields 0-9 and 10-19; ``--rows`` training rows and a tenth as many test rows of
one stream, written once as Parquet (the sparse layout) under ``--data-dir`` and reused.

Each system trains one epoch in its own process (``streamfm.run.train``, the API under ``streamfm
train``), validated on the test rows, with a checkpoint every fifth of the epoch; the child reports its
peak RSS (VmHWM), the epoch's metrics (metrics.jsonl), and every checkpoint's seconds and bytes written
(``ModelDir.save`` timed, the checkpoint directory's files summed). The training pass's rows/s leaves
the checkpoints within the epoch out; "checkpoint share" is their time over the epoch's. Systems: ``fm`` and
``llfm-jo --anchors M`` on a hashed table of the same ``--bits`` (the same memory), and with
``--exact-fm`` ``fm`` on the exact store as well.

    python tools/bench_clicklog.py [--small] [--rows N] [--features P] [--bits B] [--anchors M]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from streamfm.models.config import Config
from streamfm.run import train
from streamfm.store.modeldir import ModelDir
from streamfm.training.options import TrainOptions

spec = json.loads(sys.argv[2])
saves = []
plain_save = ModelDir.save


def timed_save(self, *args, **kwargs):
    t = time.perf_counter()
    name = plain_save(self, *args, **kwargs)
    seconds = time.perf_counter() - t
    folder = self.path / name
    size = sum(f.stat().st_size for f in folder.iterdir())
    saves.append({"seconds": seconds, "bytes": size, "delta": not (folder / "V.npy").exists()})
    return name


ModelDir.save = timed_save
t = time.perf_counter()
summary = train(spec["train"], spec["model"], config=Config(**spec["config"]),
                options=TrainOptions(**spec["options"]), valid=[spec["test"]] if spec["test"] else None)
total = time.perf_counter() - t
records = ModelDir(spec["model"]).read_metrics()
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
manifest = ModelDir(spec["model"]).read_manifest()
print(json.dumps({"record": records[-1] if records else None, "saves": saves, "peak_rss_mb": hwm / 1024, "seconds": total,
                  "store": manifest["model"].get("store"), "fill": manifest["model"].get("table_fill"),
                  "collisions": manifest["model"]["counters"].get("collisions", 0),
                  "counters": manifest["model"]["counters"]}))
"""


def make_data(directory: str, rows: int, test_rows: int, p: int, seed: int = 7) -> dict:
    """Training and test Parquet files of one seeded stream (reused if present)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tools.datagen import ctr_blocks

    stem = os.path.join(directory, f"clicklog-seed{seed}-p{p}-{rows}-{test_rows}")
    paths = {s: f"{stem}-{s}.parquet" for s in ("train", "test")}
    if all(os.path.exists(v) for v in paths.values()):
        return paths
    os.makedirs(directory, exist_ok=True)
    schema = pa.schema([("label", pa.int64()), ("indices", pa.list_(pa.int32())), ("values", pa.list_(pa.float64()))])
    writers = {s: pq.ParquetWriter(paths[s] + ".tmp", schema, compression="zstd") for s in paths}
    done = 0
    for ids, y in ctr_blocks(rows + test_rows, seed=seed, block=65_536, p=p):
        cut = min(max(rows - done, 0), len(y))
        for part, sl in (("train", slice(0, cut)), ("test", slice(cut, len(y)))):
            i, yy = ids[sl], y[sl]
            if not len(yy):
                continue
            keep = np.ones_like(i, dtype=bool)  # sorted ids, each once (two fields may hash alike)
            keep[:, 1:] = i[:, 1:] != i[:, :-1]
            offsets = pa.array(np.concatenate([[0], np.cumsum(keep.sum(1))]).astype(np.int32))
            flat = i[keep].astype(np.int32)
            writers[part].write_table(pa.Table.from_arrays(
                [pa.array(yy), pa.ListArray.from_arrays(offsets, pa.array(flat)),
                 pa.ListArray.from_arrays(offsets, pa.array(np.ones(len(flat))))], schema=schema))
        done += len(y)
    for s, w in writers.items():
        w.close()
        os.replace(paths[s] + ".tmp", paths[s])
    return paths


def run_system(name: str, config: dict, bits, data: dict, args, max_rows: int = 0) -> dict:
    """One system's run in a child process; ``max_rows``: stop (resumably, unvalidated) after that many
    training rows, for the peak RSS of the scan and set-up of a larger file (only peak RSS and seconds)."""
    model = os.path.join(args.runs_dir, "".join(c if c.isalnum() else "-" for c in name))
    subprocess.run(["rm", "-rf", model], check=True)
    options = {"epochs": 1, "quiet": True, "checkpoint_rows": max(args.rows // 5, 1), "early_stop": 0,
               "bits": bits, "memory_budget": args.budget, "max_rows": max_rows}
    spec = {"train": data["train"], "test": None if max_rows else data["test"], "model": model, "config": config,
            "options": options}
    print(f"[{name}] training ...", flush=True)
    out = subprocess.run([sys.executable, "-c", CHILD, REPO, json.dumps(spec)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if max_rows:
        r.update(name=name, config=config, bits=bits)
        print(f"[{name}] peak RSS {r['peak_rss_mb']:,.0f} MB, {r['seconds']:.0f} s", flush=True)
        return r
    rec = r["record"]
    ckpt = sum(s["seconds"] for s in r["saves"][1:-1])  # the saves within the epoch (not the first, the last)
    epoch_seconds = rec["seconds"]
    r.update(name=name, config=config, bits=bits, rows=rec["rows"], log_loss=rec["valid"]["log_loss"],
             epoch_seconds=epoch_seconds, ckpt_seconds=ckpt,
             rows_per_s=rec["rows"] / max(epoch_seconds - ckpt, 1e-9), ckpt_share=ckpt / max(epoch_seconds, 1e-9))
    print(f"[{name}] {json.dumps({k: r[k] for k in ('rows_per_s', 'log_loss', 'peak_rss_mb', 'ckpt_share')})}",
          flush=True)
    return r


def table(results) -> list:
    lines = ["| system | store | peak RSS MB | training pass rows/s | epoch s | checkpoints s (share) | "
             "MB a checkpoint writes (first, within the epoch) | table fill | collisions | mean k (rows at the cap) "
             "| test log loss |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        store = r["store"] or {}
        kind = f"hashed 2^{store['bits']} {store['dtype']}" if store.get("kind") == "hashed" else "exact float64"
        later = [s["bytes"] for s in r["saves"][1:-1]]
        mb = f"{r['saves'][0]['bytes'] / 2**20:,.0f}, {sum(later) / max(len(later), 1) / 2**20:,.1f}"
        fill = f"{r['fill']:,} ({r['fill'] / (1 << store['bits']):.1%})" if r.get("fill") is not None else "-"
        lines.append(f"| {r['name']} | {kind} | {r['peak_rss_mb']:,.0f} | {r['rows_per_s']:,.0f} | "
                     f"{r['epoch_seconds']:.1f} | {r['ckpt_seconds']:.2f} ({r['ckpt_share']:.1%}) | {mb} | {fill} | "
                     f"{r['collisions']:,} | {mean_k(r)} | {r['log_loss']:.4f} |")
    return lines


def mean_k(r) -> str:
    """llfm-jo's mean neighbours a row (Algorithm 1's k) and the share of rows that wanted more than
    the candidates held; '-' for fm."""
    c = r.get("counters") or {}
    if not c.get("k_sum") or not c.get("rows"):
        return "-"
    return f"{c['k_sum'] / c['rows']:.1f} ({c.get('wanted_more', 0) / c['rows']:.0%})"


def commit() -> str:
    """The measured code's commit (``BENCH_COMMIT`` when it runs from a copy of the repository)."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


def write_doc(results, args, cmdline: str, seconds: float, big=None) -> str:
    fm = next((r for r in results if r["name"] == "fm"), None)
    jos = [r for r in results if r["name"].startswith("llfm-jo")]
    lines = ["# LLFM at click-log width: the hashed parameter store", "",
             "Written by `tools/bench_clicklog.py`; every figure below is from this run:", "",
             f"    {cmdline}", "",
             f"Commit {commit()}, {platform.machine()}, {os.cpu_count()} cores (shared with other work while "
             f"measured), Python {platform.python_version()}; {seconds / 60:.1f} minutes in all.", "",
             f"Data: generated CTR rows (`tools/datagen.py`, seed 7): {args.rows:,} training and "
             f"{args.rows // 10:,} test rows; 30 categorical fields (Zipf-distributed values) hashed into "
             f"2^{args.features.bit_length() - 1} features, 30 non-zeros a row; labels from a logistic model with "
             "interactions between fields 0-9 and 10-19.", "",
             "Each system trains one epoch in its own process, validated on the test rows, with a checkpoint "
             "every fifth of the epoch (a delta of the slots changed since the last one when at most half of "
             "them changed, else the table whole and the per-feature arrays). The training pass's rows/s leaves "
             "the checkpoints within the epoch out; "
             "peak RSS is the process's VmHWM (scan, k-means, training, validation, checkpoints).", ""]
    lines += table(results)
    if fm and jos:
        lines.append("")
    for jo in jos if fm else ():
        lines += [f"- {jo['name']} trained at {jo['rows_per_s'] / fm['rows_per_s']:.2f} of fm's rows/s "
                  f"(target: at least 1/8 = 0.125); peak RSS {jo['peak_rss_mb']:,.0f} MB (target: 1,536 MB "
                  f"at 2,000,000 rows); checkpoints {jo['ckpt_share']:.1%} of its epoch (target: at most "
                  f"10%); test log loss {jo['log_loss']:.4f} against fm's {fm['log_loss']:.4f} on a table "
                  "of the same size."]
    if big is not None and fm:
        change = big["peak_rss_mb"] / fm["peak_rss_mb"] - 1
        lines += ["", "## A ten times larger file", "",
                  f"fm on a {10 * args.rows:,}-row file of the same stream (seed 7; its test rows unused): the scan "
                  f"pass reads all {10 * args.rows:,} rows, then training stops (resumably, `max_rows`) after "
                  f"{args.rows:,} rows with its checkpoint, not validated; {big['seconds']:.0f} s. Its peak RSS "
                  f"{big['peak_rss_mb']:,.0f} MB against {fm['peak_rss_mb']:,.0f} MB for fm's whole run on the "
                  f"{args.rows:,}-row file above: {change:+.1%} (target: within 10%). Measured with fm, not "
                  "llfm-jo: an llfm-jo epoch of the larger file would take hours here, and the memory that "
                  "grows with the file (the scan pass's statistics of the features seen) is the same for both."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="a quick run: 100,000 rows, 128 anchors, --bits 20")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--features", type=int, default=1 << 24)
    ap.add_argument("--bits", type=int, default=22, help="the hashed table of both systems: 2^bits slots")
    ap.add_argument("--anchors", type=int, default=1024)
    ap.add_argument("--candidates", type=int, nargs="+", default=[None],
                    help="llfm-jo's --candidates: one llfm-jo run per value (default: the trainer's default)")
    ap.add_argument("--tenfold", action="store_true",
                    help="also fm's peak RSS on a file of 10 x --rows rows (scan of the whole file, then "
                         "--rows training rows: stopped with max_rows, not validated)")
    ap.add_argument("--budget", type=int, default=None, help="--memory-budget in bytes (default: the trainer's)")
    ap.add_argument("--exact-fm", action="store_true", help="also fm on the exact store (p x 11 x 16 bytes)")
    ap.add_argument("--data-dir", default=os.path.join(REPO, "bench-data", "clicklog"))
    ap.add_argument("--runs-dir", default=os.path.join(REPO, "bench-runs", "clicklog"))
    ap.add_argument("--out", default=os.path.join(REPO, "docs", "clicklog.md"))
    args = ap.parse_args(argv)
    if args.small:
        args.rows, args.anchors, args.bits = min(args.rows, 100_000), min(args.anchors, 128), min(args.bits, 20)
    t0 = time.perf_counter()
    os.makedirs(args.runs_dir, exist_ok=True)
    print("writing / finding the data ...", flush=True)
    data = make_data(args.data_dir, args.rows, args.rows // 10, args.features)
    systems = [("fm", {"method": "fm"}, args.bits)]
    for k in args.candidates:
        name = f"llfm-jo --anchors {args.anchors}" + (f" --candidates {k}" if k else "")
        systems.append((name, {"method": "llfm-jo", "anchors": args.anchors,
                               **({"n_candidates": k} if k else {})}, args.bits))
    if args.exact_fm:
        systems.append(("fm (exact store)", {"method": "fm"}, None))
    results = [run_system(name, conf, bits, data, args) for name, conf, bits in systems]
    big = None
    if args.tenfold:
        print("writing / finding the 10x data ...", flush=True)
        big_data = make_data(args.data_dir, 10 * args.rows, args.rows // 10, args.features)
        big = run_system(f"fm, {10 * args.rows:,}-row file", {"method": "fm"}, args.bits, big_data, args,
                         max_rows=args.rows)
    cmdline = "python tools/bench_clicklog.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = write_doc(results, args, cmdline.strip(), time.perf_counter() - t0, big)
    with open(args.out, "w") as fh:
        fh.write(text)
    print("\n".join(table(results)))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
