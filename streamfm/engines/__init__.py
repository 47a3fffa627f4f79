"""Engines that drive the engine-free rounds API (:mod:`streamfm.training.rounds`) on other machinery.

- ``ray_engine``: data-parallel training on Ray (Ray Data over Parquet shards).
  Ray is an optional extra (``pip install "streamfm[ray]"``), imported only
  when this engine is used.
"""
