"""A generated block inside a page another tool writes: kept between two marker lines.

``tools/bench_dense.py`` writes its table into docs/results.md, which
``tools/reproduce.py`` writes too: each tool replaces only its own part, so
either can run again without erasing the other's.
"""
from __future__ import annotations

import os


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: begin (generated; edit the tool, not this block) -->", f"<!-- {name}: end -->"


def read_block(path: str, name: str) -> str | None:
    """The block ``name`` of the page at ``path``, markers included (None: the page or the block is missing)."""
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        text = fh.read()
    begin, end = markers(name)
    a, b = text.find(begin), text.find(end)
    return None if a < 0 or b < a else text[a:b + len(end)]


def write_block(path: str, name: str, body: str) -> None:
    """Put ``body`` between ``name``'s markers in the page at ``path``: in place of the block, or at the end."""
    begin, end = markers(name)
    block = f"{begin}\n{body.rstrip()}\n{end}"
    text = ""
    if os.path.exists(path):
        with open(path) as fh:
            text = fh.read()
    old = read_block(path, name)
    text = text.replace(old, block) if old else text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)
