"""Engines that run the training loop's rounds on other machinery (:mod:`streamfm.training.runner`).

- ``ray``: data-parallel training on Ray (Ray Data over Parquet shards).
  Ray is an optional extra (``pip install "streamfm[ray]"``), imported only
  when this engine is used.
"""
