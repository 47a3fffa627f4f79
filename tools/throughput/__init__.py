"""The modules of ``tools/bench_throughput.py``, by concern.

- ``data``: the benchmark's data files (dense Covtype-shaped, sparse
  CTR-shaped; Parquet, libsvm and VW text), generated once;
- ``peers``: the systems measured, each in its own process: streamfm's
  command line, Vowpal Wabbit, River, scikit-learn and the floor;
- ``breakdown``: where a training epoch's time goes (an instrumented run of
  the trainer's loop and a staged copy of the kernel);
- ``measure``: one measurement in a fresh process (``tools/harness.py``) and
  rounds of them, alternating;
- ``sections``: what each section of the page measures;
- ``report``: the page, ``docs/performance.md``, from the results
  (``speed_notes.md`` holds its fixed text);
- ``first_chunk``: the start-up probe (seconds to the first trained chunk).
"""
