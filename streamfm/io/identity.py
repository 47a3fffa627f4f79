"""Whether data files are still the files a run started on: :func:`identify`, :func:`changes`.

A run records, per file, its size, modification time and a cheap
fingerprint (BLAKE2b of its size, first and last 64 KiB), so that
``--resume`` can refuse to continue on different data: a file cut in half,
rewritten or replaced changes its size or its fingerprint; one rewritten in
place with the same bytes only its modification time, which is reported
too.  Reading 128 KiB a file keeps it cheap for any data set.
"""
from __future__ import annotations

import hashlib
import os

#: Bytes read at each end of a file for its fingerprint.
EDGE_BYTES = 64 << 10


def fingerprint(path: str, size: int) -> str:
    """BLAKE2b (16 bytes, hex) of the size and the first and last ``EDGE_BYTES`` of a file."""
    h = hashlib.blake2b(str(size).encode("ascii"), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            f.seek(max(EDGE_BYTES, size - EDGE_BYTES))
            h.update(f.read(EDGE_BYTES))
    return h.hexdigest()


def identify(path: str) -> dict:
    """``{"path", "size", "mtime_ns", "fingerprint"}`` of one file as it is now."""
    st = os.stat(path)
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "fingerprint": fingerprint(path, st.st_size)}


def identify_all(files) -> list[dict]:
    return [identify(f) for f in files]


def changes(records: list[dict]) -> list[str]:
    """What changed since ``records`` were made, one phrase per changed file (empty: nothing)."""
    out = []
    for rec in records:
        path = rec["path"]
        try:
            now = identify(path)
        except FileNotFoundError:
            out.append(f"{path} is gone")
            continue
        except OSError as exc:
            out.append(f"{path} cannot be read ({exc.strerror or exc})")
            continue
        if now["size"] != rec["size"]:
            out.append(f"{path} changed size ({rec['size']:,} bytes then, {now['size']:,} now)")
        elif now["fingerprint"] != rec["fingerprint"]:
            out.append(f"{path} changed content (same size)")
        elif now["mtime_ns"] != rec["mtime_ns"]:
            out.append(f"{path} was modified (same size, same first and last 64 KiB)")
    return out
