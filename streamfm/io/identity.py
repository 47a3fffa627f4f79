"""Whether data files are still the files a run started on: :func:`identify`, :func:`changes`.

A run records, per file, its size, modification time and a cheap
fingerprint (BLAKE2b of its size, first and last 64 KiB), so that
``--resume`` can refuse to continue on different data: a file cut in half,
rewritten or replaced changes its size or its fingerprint; one rewritten in
place with the same bytes only its modification time, which is reported
too.  Reading 128 KiB a file keeps it cheap for any data set.

Local files and URIs alike are looked up through ``pyarrow.fs``
(``io/filesystems.py``): size and modification time from its ``FileInfo``
(a file system that keeps no modification time records None, and only the
size and fingerprint are compared), the edges read by random access.
"""
from __future__ import annotations

import hashlib

from pyarrow.fs import FileType

from streamfm.errors import InputError
from streamfm.io import filesystems

#: Bytes read at each end of a file for its fingerprint.
EDGE_BYTES = 64 << 10


def fingerprint(path: str, size: int) -> str:
    """BLAKE2b (16 bytes, hex) of the size and the first and last ``EDGE_BYTES`` of a file."""
    h = hashlib.blake2b(str(size).encode("ascii"), digest_size=16)
    fs, fs_path = filesystems.resolve(path)
    with fs.open_input_file(fs_path) as f:
        h.update(f.read(EDGE_BYTES))
        if size > EDGE_BYTES:
            h.update(f.read_at(EDGE_BYTES, max(EDGE_BYTES, size - EDGE_BYTES)))
    return h.hexdigest()


def identify(path: str) -> dict:
    """``{"path", "size", "mtime_ns", "fingerprint"}`` of one file as it is now.

    Raises
    ------
    FileNotFoundError
        The file is gone.
    OSError, InputError
        It cannot be looked up or read.
    """
    info = filesystems.info(path)
    if info.type == FileType.NotFound:
        raise FileNotFoundError(path)
    return {"path": path, "size": info.size, "mtime_ns": info.mtime_ns,
            "fingerprint": fingerprint(path, info.size)}


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
        except (OSError, InputError) as exc:
            out.append(f"{path} cannot be read ({getattr(exc, 'strerror', None) or exc})")
            continue
        if now["size"] != rec["size"]:
            out.append(f"{path} changed size ({rec['size']:,} bytes then, {now['size']:,} now)")
        elif now["fingerprint"] != rec["fingerprint"]:
            out.append(f"{path} changed content (same size)")
        elif None not in (now["mtime_ns"], rec["mtime_ns"]) and now["mtime_ns"] != rec["mtime_ns"]:
            out.append(f"{path} was modified (same size, same first and last 64 KiB)")
    return out
