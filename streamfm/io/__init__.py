"""Reading data: every format becomes a stream of bounded CSR :class:`Chunk` s.

- :func:`open_source` -- files, globs, directories -> :class:`DataSource`
- :func:`convert` -- libsvm / CSV -> Parquet shards
"""
from streamfm.io.chunk import Chunk
from streamfm.io.convert import convert
from streamfm.io.sources import DataSource, open_source

__all__ = ["Chunk", "DataSource", "convert", "open_source"]
