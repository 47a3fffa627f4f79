"""Reading data: every format becomes a stream of bounded CSR :class:`Chunk` s.

- :class:`ReadOptions` -- how the files are read (format, columns, chunk size)
- :func:`open_source` -- files, globs, directories -> :class:`DataSource`
- :func:`convert` -- libsvm / CSV -> Parquet shards
"""
from streamfm.io.chunk import Chunk
from streamfm.io.convert import convert
from streamfm.io.options import ReadOptions
from streamfm.io.sources import DataSource, open_source

__all__ = ["Chunk", "DataSource", "ReadOptions", "convert", "open_source"]
