"""Which optimiser and step by default? Each optimiser on data sets nobody tuned for.

Every data set is split into a fit part and a validation part; `streamfm train`
runs on the fit part with the validation part as `--valid`, every epoch trained
(`--early-stop 0`), once per setting:

- the three optimisers at their default steps (`--optimizer adagrad`, the
  default, eta0 0.1; `normalized` 0.5; `sgd` 0.01),
- AdaGrad at a third and three times its default step (0.03, 0.3),

everything else at streamfm's defaults. The table gives the validation metric
of the best epoch (what early stopping keeps) and of the last one.

Data:
- generated (tools/datagen.py, seed 0): CTR-shaped (30 hashed categorical
  fields in 2^20 features) and Covtype-shaped (54 features, locally different
  linear rules);
- movielens-small (`--movielens DIR`, default ../shared/data/movielens-small):
  the training files split 90 / 10 (seeded), rating (RMSE) and liked (log loss);
- Banana, Magic04, LETTER: the tuning splits (`tune-fit/`, `tune-valid/`) that
  tools/benchdata.py prepares under bench-data/ (skipped when absent).

Writes docs/defaults.md.

    python tools/bench_defaults.py [--work bench-runs/defaults] [--only NAME ...]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from tools import tune as tuning  # noqa: E402
from tools.datagen import covtype_blocks, ctr_blocks  # noqa: E402

#: (flag values, label) of every setting, the default first
SETTINGS = [
    ({"optimizer": "adagrad"}, "adagrad, eta0 0.1 (default)"),
    ({"optimizer": "adagrad", "eta0": 0.03}, "adagrad, eta0 0.03"),
    ({"optimizer": "adagrad", "eta0": 0.3}, "adagrad, eta0 0.3"),
    ({"optimizer": "normalized"}, "normalized, eta0 0.5"),
    ({"optimizer": "sgd"}, "sgd, eta0 0.01"),
]
GENERATED = {"ctr": (100_000, 20_000), "covtype-shaped": (50_000, 10_000)}


def _write_generated(name, out):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n_fit, n_valid = GENERATED[name]
    paths = {part: os.path.join(out, f"{name}-{part}.parquet") for part in ("fit", "valid")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    os.makedirs(out, exist_ok=True)
    block = 10_000
    if name == "ctr":
        blocks = list(ctr_blocks(n_fit + n_valid, seed=0, block=block))

        def table(bs):
            rows = [np.unique(r) for r in np.concatenate([b[0] for b in bs])]
            off = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int32)
            flat = np.concatenate(rows).astype(np.int32)
            return pa.table({"label": np.concatenate([b[1] for b in bs]),
                             "indices": pa.ListArray.from_arrays(pa.array(off), pa.array(flat)),
                             "values": pa.ListArray.from_arrays(pa.array(off), pa.array(np.ones(len(flat))))})
    else:
        blocks = list(covtype_blocks(n_fit + n_valid, seed=0, block=block))

        def table(bs):
            X = np.concatenate([b[0] for b in bs])
            return pa.table({**{f"f{j}": X[:, j] for j in range(X.shape[1])}, "label": np.concatenate([b[1] for b in bs])})
    k = n_fit // block
    for part, bs in (("fit", blocks[:k]), ("valid", blocks[k:])):
        pq.write_table(table(bs), paths[part] + ".tmp")
        os.replace(paths[part] + ".tmp", paths[part])
    return paths


def _split_movielens(task, src, out):
    """The movielens training file cut 90 / 10 by a seeded permutation (libsvm lines as they are)."""
    paths = {part: os.path.join(out, f"movielens-{task}-{part}.svm") for part in ("fit", "valid")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    os.makedirs(out, exist_ok=True)
    with gzip.open(os.path.join(src, f"train-{task}.svm.gz"), "rt") as fh:
        lines = fh.readlines()
    valid = set(np.random.default_rng(0).permutation(len(lines))[: len(lines) // 10].tolist())
    for part, keep in (("fit", lambda i: i not in valid), ("valid", lambda i: i in valid)):
        with open(paths[part] + ".tmp", "w") as fh:
            fh.writelines(line for i, line in enumerate(lines) if keep(i))
        os.replace(paths[part] + ".tmp", paths[part])
    return paths


def data_sets(args) -> list[tuple[str, dict, str, int, tuple]]:
    """(name, {fit, valid} paths, task, epochs, methods) of every data set found."""
    sets = [(n, _write_generated(n, args.data), "binary", 10, ("fm",) if n == "ctr" else ("fm", "llfm-jo"))
            for n in GENERATED]
    if os.path.isdir(args.movielens):
        for task, kind in (("rating", "regression"), ("liked", "binary")):
            sets.append((f"movielens-{task}", _split_movielens(task, args.movielens, args.data), kind, 20,
                         ("fm", "llfm-jo")))
    for name, epochs in (("banana", 20), ("magic04", 15), ("letter", 15)):
        split = os.path.join(args.bench, name, "split-0")
        if os.path.isdir(os.path.join(split, "tune-fit")):
            sets.append((name, {"fit": os.path.join(split, "tune-fit"), "valid": os.path.join(split, "tune-valid")},
                         None, epochs, ("fm", "llfm-jo")))
    return [s for s in sets if not args.only or s[0] in args.only]


def curve(model: str, key: str) -> list[float]:
    with open(os.path.join(model, "metrics.jsonl")) as fh:
        return [json.loads(line)["valid"][key] for line in fh if line.strip()]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.path.join(ROOT, "bench-runs", "defaults"))
    ap.add_argument("--data", default=os.path.join(ROOT, "bench-data", "defaults"))
    ap.add_argument("--bench", default=os.path.join(ROOT, "bench-data"), help="tools/benchdata.py's output")
    ap.add_argument("--movielens", default=os.path.join(ROOT, "..", "shared", "data", "movielens-small"))
    ap.add_argument("--only", nargs="+", help="data set names")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "defaults.md"))
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    rows, cmds = [], []
    for name, paths, task, epochs, methods in data_sets(args):
        key = "rmse" if task == "regression" else "log_loss"
        for method in methods:
            for flags, label in SETTINGS:
                tag = ",".join(f"{k}={v}" for k, v in flags.items())
                model = os.path.relpath(os.path.join(args.work, f"{name}-{method}-{tag}"), ROOT)
                extra = ["--task", task] if task else []
                argv_ = tuning.train_argv(os.path.relpath(paths["fit"], ROOT), model, method=method, epochs=epochs,
                                          seed=0, valid=os.path.relpath(paths["valid"], ROOT), params=flags,
                                          extra=extra)
                t = time.perf_counter()
                tuning.run_streamfm(argv_, model)
                c = curve(model, key)
                rows.append({"data": name, "method": method, "setting": label, "metric": key,
                             "best": min(c), "best_epoch": int(np.argmin(c)) + 1, "last": c[-1], "epochs": epochs,
                             "seconds": round(time.perf_counter() - t, 1)})
                cmds.append(tuning.command_line(argv_))
                print(f"{name} {method} {label}: best {min(c):.4f} (epoch {np.argmin(c) + 1}), last {c[-1]:.4f}",
                      flush=True)
    write_report(rows, cmds, args.out)
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, "defaults.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


def write_report(rows, cmds, out):
    L = ["# Which optimiser by default? Each one on data nobody tuned for", "",
         "Written by `python tools/bench_defaults.py` (every number below; the `streamfm` command lines are at "
         "the end). Each data set is split into a fit and a validation part; `streamfm train` trains on the fit "
         "part, every epoch (`--early-stop 0`), with each optimiser at its default step and AdaGrad also at a third "
         "and three times its step, everything else at streamfm's defaults. \"best\" is the validation metric of "
         "the best epoch (what early stopping keeps), \"last\" that of the last epoch; log loss for "
         "classification, RMSE for regression; lower is better.", "",
         "| data | method | metric | " + " | ".join(label for _, label in SETTINGS) + " |",
         "|---|---|---|" + "---|" * len(SETTINGS)]
    groups = {}
    for r in rows:
        groups.setdefault((r["data"], r["method"]), {})[r["setting"]] = r
    wins = {}
    for (data, method), g in groups.items():
        best = min(r["best"] for r in g.values())
        cells = []
        for _, label in SETTINGS:
            r = g.get(label)
            if r is None:
                cells.append("")
                continue
            text = f"{r['best']:.4f} (ep. {r['best_epoch']}) / {r['last']:.4f}"
            cells.append(f"**{text}**" if r["best"] == best else text)
        metric = next(iter(g.values()))["metric"].replace("_", " ")
        L.append(f"| {data} | {method} | {metric} | " + " | ".join(cells) + " |")
        winner = min(g.values(), key=lambda r: r["best"])["setting"]
        wins[winner] = wins.get(winner, 0) + 1
    default = SETTINGS[0][1]
    gaps = []
    for (data, method), g in groups.items():
        if default in g:
            best = min(r["best"] for r in g.values())
            gaps.append((g[default]["best"] - best) / best)
    L += ["", "Cells: best epoch's value (its epoch) / last epoch's value; bold: the best setting of the row.", "",
          "## What it means for the defaults", "",
          "Best setting per row: " + "; ".join(f"{k}: {v}" for k, v in sorted(wins.items(), key=lambda kv: -kv[1]))
          + f". The default ({default}) is within {100 * max(gaps):.1f}% of the row's best setting on every row "
          f"(median {100 * float(np.median(gaps)):.1f}%), with early stopping keeping its best epoch.", "",
          "```bash"] + cmds + ["```", ""]
    with open(out, "w") as fh:
        fh.write("\n".join(L))


if __name__ == "__main__":
    main()
