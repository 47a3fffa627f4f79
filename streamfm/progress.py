"""Progress bars: tqdm when shown, a no-op otherwise; and whether to show them.

Bars redraw one line with carriage returns: on a terminal that is a moving
bar, in a log file it is noise. So they are drawn by default only when
standard error is a terminal (or a Jupyter kernel shows them), and never with
``quiet`` unless asked for (``--progress`` / ``--no-progress``,
``TrainOptions.progress``).

``tqdm.auto`` costs about 40 ms to import (it probes for notebooks); a run
with ``--quiet`` never draws a bar, so it should not pay that at start-up.
"""
from __future__ import annotations

import sys


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


def show_progress(progress: bool | None, quiet: bool = False) -> bool:
    """Whether to draw bars: ``progress`` if given (True / False), else when standard error is a
    terminal (or a Jupyter kernel's) and not ``quiet``."""
    if progress is not None:
        return bool(progress)
    if quiet:
        return False
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed
        terminal = False
    return terminal or "ipykernel" in sys.modules
