"""Writing the benchmark tools' pages: a whole page, or a generated block inside a page another tool writes.

- :func:`write_page`: a page of lines, replaced whole (and echoed).
- :func:`write_block`: a block kept between two marker lines.
  ``tools/bench_dense.py`` writes its table into docs/results.md, which
  ``tools/reproduce.py`` writes too: each tool replaces only its own part,
  so either can run again without erasing the other's.

Both replace the file at once (a temporary file renamed over it), so an
interrupted tool leaves the last complete page.
"""
from __future__ import annotations

import os


def _replace(path: str, text: str) -> None:
    with open(path + ".tmp", "w") as fh:
        fh.write(text)
    os.replace(path + ".tmp", path)


def write_page(path: str, lines, *, echo: bool = True) -> str:
    """The page ``lines`` (joined by newlines, one at the end) into ``path``; printed too unless ``echo`` is
    False. Returns its text."""
    text = "\n".join(lines) + "\n"
    _replace(path, text)
    if echo:
        print(text)
    return text


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
    _replace(path, text)
