"""The paper's benchmark data sets (Table 1) as standardised Parquet shards, one seeded split per run.

For each data set and each seed s this writes, under ``OUT/<name>/split-<s>/``:

- ``train/part-*.parquet``: the training rows (the paper's Table 1 size),
  stratified and seeded, spread over shards of at most ``ROWS_PER_SHARD`` rows
  at random (each shard a random subset; within a shard the source's order:
  streamfm shuffles the shards and the rows, in a bounded buffer, every epoch);
- ``test/part-*.parquet``: the test rows;
- ``tune-fit/`` and ``tune-valid/``: the training rows again, split once more
  (stratified, seeded, ``TUNE_FRACTION`` of them held out), for tuning that
  must never see the test rows;
- ``meta.json``: sizes, class counts, the source files and the standardising
  statistics.

Features are standardised to zero mean and unit variance with the statistics
of that split's training rows (a constant feature is only centred). Columns
are ``f0..f{p-1}`` (float32) and ``label`` (the label as the source writes it).

Everything streams: the source is read three times in bounded chunks (labels;
training statistics; rows out), so a data set larger than memory prepares in
memory proportional to its row count (the labels and the split), not its size.

Data sets with their own test file (IJCNN1, MNIST) keep the published
train / test files as the split; the seeds then only change which training
rows share a shard, the tuning split, and the runs' own seeds. Where a source holds a different number of rows than
the paper's (a sample, say), the split keeps the paper's train fraction.

    python tools/benchdata.py                       # every data set found under ../shared/data
    python tools/benchdata.py --only letter --seeds 0 1 2
    python tools/benchdata.py --ijcnn1 ~/dl/ijcnn1.bz2 ~/dl/ijcnn1.t.bz2 --mnist ~/dl/mnist.bz2 ~/dl/mnist.t.bz2 \\
                              --covtype ~/dl/covtype.libsvm.binary.bz2     # or --covtype-uci ~/dl/covtype.data.gz
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from streamfm.io.options import ReadOptions  # noqa: E402
from streamfm.io.sources import open_source  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "data"))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "bench-data"))
TUNE_FRACTION = 0.2  # of the training rows, held out for tuning
ROWS_PER_SHARD = 50_000
CHUNK_ENTRIES = 2_000_000  # rows x features read at a time
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Dataset:
    """A data set of the paper's Table 1 and where its files are found.

    ``files``: file names under ``<data>/<folder>/`` (a compressed .bz2 / .gz
    / .xz copy is found too): one file (split here) or two (train, test).
    """

    name: str
    folder: str
    files: tuple
    format: str  # "csv" (no header, label last) or "libsvm"
    n_train: int
    n_test: int
    n_features: int  # declared width (a libsvm file may not use its last features)
    epochs: int  # the length of the paper's Figure 1 curve (Magic04 has none: 15)
    description: str

    @property
    def paired(self) -> bool:
        return len(self.files) == 2

    @property
    def train_fraction(self) -> float:
        return self.n_train / (self.n_train + self.n_test)


DATASETS = {d.name: d for d in [
    Dataset("banana", "banana", ("banana.csv",), "csv", 3533, 1767, 2, 20, "Banana, 2 features, labels -1/1"),
    Dataset("magic04", "magic04", ("magic04.csv",), "csv", 12680, 6340, 10, 15, "MAGIC gamma telescope, labels g/h"),
    Dataset("ijcnn1", "ijcnn1", ("ijcnn1", "ijcnn1.t"), "libsvm", 49990, 91701, 22, 20,
            "LIBSVM ijcnn1 / ijcnn1.t, labels -1/1"),
    Dataset("letter", "letter", ("letter.csv",), "csv", 15000, 5000, 16, 15, "UCI LETTER, 26 classes A..Z"),
    Dataset("mnist", "mnist", ("mnist", "mnist.t"), "libsvm", 60000, 10000, 780, 10,
            "LIBSVM mnist / mnist.t, 10 classes"),
    Dataset("covtype", "covtype", ("covtype.libsvm.binary",), "libsvm", 387342, 193670, 54, 15,
            "LIBSVM covtype.libsvm.binary, labels 1/2 (the paper's Covtype)"),
    Dataset("covtype-uci", "covtype", ("covtype.data",), "csv", 387342, 193670, 54, 15,
            "UCI covtype.data(.gz), 7 classes (not the paper's binary task)"),
]}
COMPRESSED = ("", ".bz2", ".gz", ".xz")


# ----------------------------------------------------------------------------- splits
def stratified_split(y, n_train, seed):
    """(train, test) row indices: ``n_train`` rows drawn per class in proportion, both in random order."""
    rng = np.random.default_rng(seed)
    train = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        take = int(round(n_train * len(idx) / len(y)))
        train.append(rng.permutation(idx)[:take])
    train = np.concatenate(train)
    # rounding per class can miss the total by one: fix it from the rest
    rest = np.setdiff1d(np.arange(len(y)), train)
    if len(train) < n_train:
        train = np.concatenate([train, rng.permutation(rest)[: n_train - len(train)]])
    train = rng.permutation(train[:n_train])
    test = rng.permutation(np.setdiff1d(np.arange(len(y)), train))
    return train, test


def tune_split(y_train, seed, fraction=TUNE_FRACTION):
    """(fit, valid) positions within the training rows, stratified; a seed stream apart from the main split."""
    n_fit = len(y_train) - max(1, int(round(fraction * len(y_train))))
    return stratified_split(y_train, n_fit, seed=[seed, 7])


# ----------------------------------------------------------------------------- sources
def find_files(ds: Dataset, data_dir: str):
    """The data set's files under ``data_dir/<folder>/`` (any compression), or None if any is missing."""
    out = []
    for name in ds.files:
        for suffix in COMPRESSED:
            path = os.path.join(data_dir, ds.folder, name + suffix)
            if os.path.isfile(path):
                out.append(path)
                break
        else:
            return None
    return out


def _open(path: str, ds: Dataset, chunk_rows: int):
    if ds.format == "csv":
        return open_source(path, ReadOptions(format="csv", header=False, label_column=-1, chunk_rows=chunk_rows))
    return open_source(path, ReadOptions(format="libsvm", zero_based=False, chunk_rows=chunk_rows))


def _labels(src):
    """Every label of a source (one pass) and the widest row seen."""
    ys, p = [], 0
    for ch in src.iter_chunks():
        ys.append(np.asarray(ch.y))
        p = max(p, ch.n_features)
    y = np.concatenate(ys) if ys else np.zeros(0)
    return y, p


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- writing
class _ShardWriter:
    """Rows to ``n_shards`` Parquet files; each row's shard is given. Files appear atomically at close."""

    def __init__(self, directory: str, n_shards: int, p: int, label_type):
        import pyarrow as pa

        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.schema = pa.schema([(f"f{j}", pa.float32()) for j in range(p)] + [("label", label_type)])
        self.paths = [os.path.join(directory, f"part-{s:05d}.parquet") for s in range(n_shards)]
        self.writers = [None] * n_shards

    def write(self, X, y, shard):
        import pyarrow as pa
        import pyarrow.parquet as pq

        for s in np.unique(shard):
            rows = np.flatnonzero(shard == s)
            cols = [pa.array(X[rows, j], type=pa.float32()) for j in range(X.shape[1])]
            cols.append(pa.array(y[rows], type=self.schema.field("label").type))
            if self.writers[s] is None:
                self.writers[s] = pq.ParquetWriter(self.paths[s] + ".tmp", self.schema, compression="zstd")
            self.writers[s].write_table(pa.Table.from_arrays(cols, schema=self.schema))

    def close(self):
        for path, w in zip(self.paths, self.writers):
            if w is not None:
                w.close()
                os.replace(path + ".tmp", path)


def _label_type(y):
    import pyarrow as pa

    if y.dtype.kind in "US" or y.dtype == object:
        return pa.string()
    if np.all(np.asarray(y, dtype=np.float64) == np.round(np.asarray(y, dtype=np.float64))):
        return pa.int64()
    return pa.float64()


def _cast_labels(y, label_type):
    import pyarrow as pa

    if label_type == pa.string():
        return np.asarray(y).astype(str)
    if label_type == pa.int64():
        return np.asarray(y, dtype=np.float64).astype(np.int64)
    return np.asarray(y, dtype=np.float64)


def _shards_of(order_positions, n_rows):
    """Shard of each row given its position in the (random) output order: consecutive blocks of positions."""
    n_shards = max(1, -(-n_rows // ROWS_PER_SHARD))
    per = -(-n_rows // n_shards)
    return order_positions // per, n_shards


@dataclass
class _Role:
    """One output directory of one split: which source rows go there and to which shard."""

    name: str
    rows: np.ndarray  # source row ids (in the source's stream numbering)
    position: np.ndarray  # each row's position in the output's random order

    def assignment(self, n_source_rows):
        shard_of, n_shards = _shards_of(self.position, len(self.rows))
        full = np.full(n_source_rows, -1, dtype=np.int64)
        full[self.rows] = shard_of
        return full, n_shards


def prepare(ds: Dataset, paths, out_dir: str, seeds, *, tune: bool = True, overwrite: bool = False,
            quiet: bool = False) -> dict:
    """Write the splits of ``ds`` (read from ``paths``) for ``seeds`` under ``out_dir/<name>/``.

    Returns {seed: meta} (also written as split-<seed>/meta.json).
    """
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    paths = [os.path.abspath(p) for p in paths]
    if len(paths) != len(ds.files):
        raise ValueError(f"{ds.name} needs {len(ds.files)} file(s) ({', '.join(ds.files)}), got {len(paths)}")
    base = os.path.join(out_dir, ds.name)
    t0 = time.perf_counter()
    # the source files: one (split here) or two (train, test as published)
    chunk_rows = max(1024, CHUNK_ENTRIES // max(ds.n_features, 1))
    sources = [_open(p, ds, chunk_rows) for p in paths]
    labels = []
    p = ds.n_features
    for src in sources:  # pass 1: labels
        y, width = _labels(src)
        labels.append(y)
        p = max(p, width)
    if p != ds.n_features:
        raise ValueError(f"{paths}: rows with {p} features; {ds.name} has {ds.n_features}")
    n_rows = [len(y) for y in labels]
    log(f"{ds.name}: {' + '.join(f'{n:,}' for n in n_rows)} rows, {p} features, "
        f"{len(np.unique(np.concatenate(labels)))} classes")
    # the splits, in source-row numbering: stream 0 = the single file or the train file, stream 1 = the test file
    plans = {}
    for seed in seeds:
        if ds.paired:
            y_tr = labels[0]
            train = np.random.default_rng([seed, 3]).permutation(len(y_tr))
            test = np.arange(n_rows[1])
        else:
            y_all = labels[0]
            n_train = ds.n_train if n_rows[0] == ds.n_train + ds.n_test else int(round(ds.train_fraction * n_rows[0]))
            train, test = stratified_split(y_all, n_train, seed)
            y_tr = y_all[train]
        roles = [(0, _Role("train", train, np.arange(len(train))))]
        roles.append((1 if ds.paired else 0, _Role("test", test, np.arange(len(test)))))
        if tune:
            fit, valid = tune_split(y_tr, seed)
            roles.append((0, _Role("tune-fit", train[fit], np.arange(len(fit)))))
            roles.append((0, _Role("tune-valid", train[valid], np.arange(len(valid)))))
        plans[seed] = {"train_rows": train, "roles": roles}
    # pass 2: training statistics per seed (Chan's merge of per-chunk moments)
    stats = {s: [0, np.zeros(p), np.zeros(p)] for s in seeds}  # n, mean, M2
    masks = {}
    for s in seeds:
        masks[s] = np.zeros(n_rows[0], dtype=bool)
        masks[s][plans[s]["train_rows"]] = True
    row0 = 0
    for chunk in sources[0].iter_chunks():
        X = chunk.to_dense(p)
        ids = np.arange(row0, row0 + chunk.n_rows)
        for s in seeds:
            Xs = X[masks[s][ids]]
            if len(Xs) == 0:
                continue
            n_a, mean_a, m2_a = stats[s]
            n_b, mean_b = len(Xs), Xs.mean(0)
            m2_b = ((Xs - mean_b) ** 2).sum(0)
            n = n_a + n_b
            delta = mean_b - mean_a
            stats[s] = [n, mean_a + delta * n_b / n, m2_a + m2_b + delta ** 2 * n_a * n_b / n]
        row0 += chunk.n_rows
    # pass 3: rows out
    label_type = _label_type(np.concatenate(labels))
    metas = {}
    writers = {}
    for s in seeds:
        d = os.path.join(base, f"split-{s}")
        if os.path.exists(d):
            if not overwrite:
                raise FileExistsError(f"{d} exists; pass --overwrite to replace it")
            shutil.rmtree(d)
        n, mean, m2 = stats[s]
        std = np.sqrt(m2 / max(n, 1))
        scale = np.where(std > 0, std, 1.0)
        for stream, role in plans[s]["roles"]:
            assign, n_shards = role.assignment(n_rows[stream])
            writers[(s, role.name)] = (stream, assign, _ShardWriter(os.path.join(d + ".tmp", role.name),
                                                                    n_shards, p, label_type), mean, scale)
        metas[s] = {"format_version": FORMAT_VERSION, "dataset": ds.name, "description": ds.description,
                    "seed": s, "n_features": p, "sources": paths,
                    "sizes": {role.name: int(len(role.rows)) for _, role in plans[s]["roles"]},
                    "paper_sizes": {"train": ds.n_train, "test": ds.n_test},
                    "tune_fraction": TUNE_FRACTION if tune else None,
                    "standardize": {"mean": mean.tolist(), "std": std.tolist()}}
    for stream, src in enumerate(sources):
        row0 = 0
        for chunk in src.iter_chunks():
            X = chunk.to_dense(p)
            y = _cast_labels(chunk.y, label_type)
            ids = np.arange(row0, row0 + chunk.n_rows)
            for (s, name), (st, assign, w, mean, scale) in writers.items():
                if st != stream:
                    continue
                shard = assign[ids]
                keep = shard >= 0
                if keep.any():
                    w.write((X[keep] - mean) / scale, y[keep], shard[keep])
            row0 += chunk.n_rows
    for w in writers.values():
        w[2].close()
    import pyarrow.parquet as pq

    for s in seeds:
        d = os.path.join(base, f"split-{s}")
        for name in metas[s]["sizes"]:  # class counts, from what was written
            parts = sorted(os.listdir(os.path.join(d + ".tmp", name)))
            y_role = np.concatenate([pq.read_table(os.path.join(d + ".tmp", name, f), columns=["label"])
                                     .column("label").to_numpy(zero_copy_only=False) for f in parts])
            cls, cnt = np.unique(y_role.astype(str), return_counts=True)
            metas[s].setdefault("class_counts", {})[name] = dict(zip(cls.tolist(), cnt.tolist()))
        with open(os.path.join(d + ".tmp", "meta.json"), "w") as fh:
            json.dump(metas[s], fh, indent=1)
        os.replace(d + ".tmp", d)
        log(f"  split-{s}: " + ", ".join(f"{k} {v:,}" for k, v in metas[s]["sizes"].items()))
    log(f"  {time.perf_counter() - t0:.1f} s")
    return metas


def split_dir(out_dir: str, name: str, seed: int) -> str:
    return os.path.join(out_dir, name, f"split-{seed}")


# ----------------------------------------------------------------------------- command line
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA, help="folder of the data sets (default: ../shared/data)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: ./bench-data)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(5)), help="split seeds (default: 0 1 2 3 4)")
    ap.add_argument("--only", nargs="+", choices=sorted(DATASETS), help="only these data sets")
    ap.add_argument("--ijcnn1", nargs=2, metavar=("TRAIN", "TEST"), help="LIBSVM ijcnn1 and ijcnn1.t")
    ap.add_argument("--mnist", nargs=2, metavar=("TRAIN", "TEST"), help="LIBSVM mnist and mnist.t")
    ap.add_argument("--covtype", metavar="FILE", help="LIBSVM covtype.libsvm.binary (the paper's binary Covtype)")
    ap.add_argument("--covtype-uci", metavar="FILE", help="UCI covtype.data.gz (7 classes)")
    ap.add_argument("--no-tune", action="store_true", help="do not write the tune-fit / tune-valid splits")
    ap.add_argument("--overwrite", action="store_true", help="replace splits that exist")
    ap.add_argument("--sha256", action="store_true", help="record the sources' sha256 in meta.json")
    args = ap.parse_args(argv)
    given = {"ijcnn1": args.ijcnn1, "mnist": args.mnist,
             "covtype": [args.covtype] if args.covtype else None,
             "covtype-uci": [args.covtype_uci] if args.covtype_uci else None}
    todo = []
    for name, ds in DATASETS.items():
        if args.only and name not in args.only:
            continue
        paths = given.get(name) or find_files(ds, args.data)
        if paths is None:
            if args.only:
                raise SystemExit(f"{name}: no files ({', '.join(ds.files)}) under {os.path.join(args.data, ds.folder)}"
                                 f"; give their paths (--{name} ...)")
            print(f"{name}: not found under {os.path.join(args.data, ds.folder)}; skipped")
            continue
        todo.append((ds, paths))
    for ds, paths in todo:
        metas = prepare(ds, paths, args.out, args.seeds, tune=not args.no_tune, overwrite=args.overwrite)
        if args.sha256:
            digests = {p: _sha256(p) for p in paths}
            for s, meta in metas.items():
                meta["sha256"] = digests
                with open(os.path.join(split_dir(args.out, ds.name, s), "meta.json"), "w") as fh:
                    json.dump(meta, fh, indent=1)


if __name__ == "__main__":
    main()
