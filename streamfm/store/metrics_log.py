"""``metrics.jsonl``: one JSON record per line, appended durably, read back whole."""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Mapping

from streamfm.errors import DiskFullError, is_disk_full
from streamfm.io.atomic import atomic_write_bytes, dumps_json, fsync_dir, write_and_fsync
from streamfm.store.checkpoints import make_dir
from streamfm.store.manifest import damaged

METRICS = "metrics.jsonl"


def append_record(path: pathlib.Path, record: Mapping[str, Any]) -> None:
    """Append one JSON record as a line of ``path/metrics.jsonl`` (the directory is made if missing).

    The line is written with one ``write`` and fsynced.  A line torn by a
    crash (no final newline) is cut off first, so the file stays one valid
    record per line.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"a metrics record must be a mapping, not {type(record).__name__}")
    data = (dumps_json(record, indent=None) + "\n").encode("utf-8")
    make_dir(path)
    fd = os.open(path / METRICS, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        end = _complete_lines_end(fd, size)
        if end != size:
            os.ftruncate(fd, end)
        write_and_fsync(fd, data)
    except OSError as exc:
        if is_disk_full(exc):
            os.ftruncate(fd, end)  # no torn line left behind
            raise DiskFullError(f"no space left on device while writing {path / METRICS}: the epoch's record "
                                f"needs {len(data):,} bytes; the model's checkpoint is committed") from None
        raise
    finally:
        os.close(fd)
    if size == 0:
        fsync_dir(path)  # a new file's directory entry


def read_records(path: pathlib.Path) -> list[dict]:
    """All records of ``path/metrics.jsonl``, oldest first; a torn last line is skipped."""
    try:
        raw = (path / METRICS).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return []
    lines = raw.split(b"\n")[:-1]  # the part after the last newline is torn or empty
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise damaged(path, f"{METRICS} line {number} is not a JSON object")
        records.append(record)
    return records


def drop_records_after(path: pathlib.Path, t: int) -> int:
    """Remove the records of a model trained beyond step ``t`` (their ``"t"``; the step count
    only grows, also across continued runs): those a crash or a failed checkpoint left without
    the checkpoint that holds them.  Returns how many; the file is rewritten atomically."""
    records = read_records(path)
    keep = [r for r in records if not (isinstance(r.get("t"), int) and r["t"] > t)]
    if len(keep) == len(records):
        return 0
    text = "".join(dumps_json(r, indent=None) + "\n" for r in keep)
    atomic_write_bytes(path / METRICS, text.encode("utf-8"))
    return len(records) - len(keep)


def _complete_lines_end(fd: int, size: int) -> int:
    """Offset just after the last newline in the first ``size`` bytes (0 if none)."""
    end, block = size, 4096
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        end = start
    return 0
