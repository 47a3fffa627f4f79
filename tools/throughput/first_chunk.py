"""``streamfm train DATA --model MODEL --method llfm-jo --epochs 1 --max-rows 1 --quiet``, noting when training starts.

The start-up section of ``bench_throughput.py`` runs this in a fresh process::

    python -m tools.throughput.first_chunk DATA MODEL

It imports the command line (as ``python -m streamfm`` does), then trains
through ``streamfm.run.train``, the function ``streamfm train`` calls, with
a callback (``training/callbacks.py``) that prints to stderr
``EPOCH_BEGIN <unix time>`` when the first epoch begins (after the imports,
the scan pass and k-means) and ``FIRST_ROWS <unix time>`` when its first
rows have been trained (the kernels loaded from numba's cache, or compiled,
and run). The benchmark subtracts the time it spawned the process.
"""
import sys
import time

import streamfm.cli  # noqa: F401  (the command line's imports, paid as `streamfm train` pays them)
from streamfm.models.config import Config
from streamfm.run import train
from streamfm.training.callbacks import Callback


class Stamps(Callback):
    """Prints the moment of the first ``epoch_begin`` and of the first ``rows`` event."""

    def __init__(self):
        self.seen = set()

    def _stamp(self, key):
        if key not in self.seen:
            self.seen.add(key)
            print(f"{key} {time.time():.6f}", file=sys.stderr, flush=True)

    def on_epoch_begin(self, env):
        self._stamp("EPOCH_BEGIN")

    def on_rows(self, env):
        self._stamp("FIRST_ROWS")


def main(argv):
    from streamfm.training.options import TrainOptions

    data, model = argv
    train(data, model, config=Config(method="llfm-jo"),
          options=TrainOptions(epochs=1, max_rows=1, quiet=True), callbacks=[Stamps()])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
