"""Write the Banana data shipped inside the package (streamfm/data/).

Banana (5,300 rows, 2 features, labels -1/+1) from ../shared/data/banana, split
as the paper does (3,533 train / 1,767 test), stratified and seeded. Raw
values: streamfm standardises with training statistics itself.

    python tools/make_embedded_data.py [--data ../shared/data]
"""
import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

try:
    from tools.benchdata import stratified_split
except ImportError:  # run as a script: tools/ is on the path
    from benchdata import stratified_split


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "streamfm", "data"))
    args = ap.parse_args()
    raw = np.loadtxt(os.path.join(args.data, "banana", "banana.csv"), delimiter=",")
    X, y = raw[:, :2], raw[:, 2]
    train, test = stratified_split(y, 3533, seed=0)
    os.makedirs(args.out, exist_ok=True)
    for name, rows in (("banana-train", train), ("banana-test", test)):
        table = pa.table({"f0": X[rows, 0], "f1": X[rows, 1], "label": y[rows]})
        pq.write_table(table, os.path.join(args.out, f"{name}.parquet"))
        print(name, table.num_rows)


if __name__ == "__main__":
    main()
