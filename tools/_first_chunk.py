"""Run ``python -m streamfm ARGS`` and print to stderr when training starts.

Used by ``bench_throughput.py``'s start-up section: the lines
``FIRST_CHUNK_IN <unix time>`` and ``FIRST_CHUNK_OUT <unix time>`` are
written as the first chunk enters and leaves the model's training step
(``LLFMModel.partial_fit_chunk``): after the imports, the scan pass and
k-means, and after the kernels are loaded from numba's cache and have
trained that chunk. The bench subtracts the time it spawned the process.
Nothing else about the run changes.
"""
import sys
import time

from streamfm.models.core import LLFMModel

_train_chunk = LLFMModel.partial_fit_chunk
_seen = []  # set once the first chunk has been seen


def _first(self, *args, **kwargs):
    if _seen:
        return _train_chunk(self, *args, **kwargs)
    _seen.append(True)
    print(f"FIRST_CHUNK_IN {time.time():.6f}", file=sys.stderr, flush=True)
    out = _train_chunk(self, *args, **kwargs)
    print(f"FIRST_CHUNK_OUT {time.time():.6f}", file=sys.stderr, flush=True)
    return out


LLFMModel.partial_fit_chunk = _first

if __name__ == "__main__":
    from streamfm.cli import main

    sys.exit(main(sys.argv[1:]))
