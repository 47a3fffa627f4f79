"""Test doubles shared by the test modules."""


class FakeSource:
    """The DataSource interface the preprocessors use, over in-memory chunks."""

    def __init__(self, files, dense=False, n_features_hint=None):
        self._files = dict(files)
        self.files = list(self._files)
        self.dense = dense
        self.n_features_hint = n_features_hint

    def iter_file(self, path, chunk_rows=None):
        yield from self._files[path]

    def iter_chunks(self, files=None, chunk_rows=None):
        for path in self.files if files is None else files:
            yield from self.iter_file(path, chunk_rows)
