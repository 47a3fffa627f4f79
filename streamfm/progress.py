"""Progress bars: tqdm when shown, a no-op otherwise.

``tqdm.auto`` costs about 40 ms to import (it probes for notebooks); a run
with ``--quiet`` never draws a bar, so it should not pay that at start-up.
"""
from __future__ import annotations


class _NoBar:
    """What the pipeline calls on a bar, doing nothing (``tqdm(disable=True)`` without the import)."""

    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def progress_bar(*, disable: bool, **kwargs):
    """``tqdm.auto.tqdm(**kwargs)``, or a no-op bar when ``disable``."""
    if disable:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(**kwargs)
