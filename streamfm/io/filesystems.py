"""Where data files live: local paths and URIs (``s3://``, ``gs://``, ``hdfs://``, ``file://``).

Every data file is opened through ``pyarrow.fs``: a local path through its
``LocalFileSystem``, a URI through the file system its scheme names
(``FileSystem.from_uri``), which takes credentials, regions and endpoints
from the environment as pyarrow reads them (``AWS_*`` for S3, Google's
application default credentials for GCS, ``HADOOP_HOME`` / ``CLASSPATH``
for HDFS).  A URI carries no query string: a ``?`` in it is a glob
character, as in a local path.

A file system is made once per ``scheme://authority`` (an S3 bucket's region
is looked up when its file system is made) and kept for the process.
:data:`SCHEMES` maps a scheme to the function that makes its file system, so
a test (or an embedding program) can serve a scheme from a file system of
its own, e.g. ``SCHEMES["memory"] = lambda uri: (fs, path)``.
"""
from __future__ import annotations

import fnmatch
import os
import re
import threading
from typing import Callable

import pyarrow.fs as pafs

from streamfm.errors import InputError

_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]+)://")

#: scheme -> function(uri) -> (FileSystem, path in it); a scheme not here goes to ``FileSystem.from_uri``.
SCHEMES: dict[str, Callable[[str], tuple[pafs.FileSystem, str]]] = {}

_LOCAL = pafs.LocalFileSystem()
_made: dict[str, tuple[pafs.FileSystem, str]] = {}
_made_lock = threading.Lock()


def is_uri(path) -> bool:
    """Whether ``path`` names a file by URI (``scheme://...``) rather than a local path."""
    return isinstance(path, str) and _URI.match(path) is not None


def _split(uri: str) -> tuple[str, str, str]:
    """(``scheme://authority``, scheme, the path after the authority, starting with '/')."""
    scheme, rest = uri.split("://", 1)
    authority, _, path = rest.partition("/")
    return f"{scheme.lower()}://{authority}", scheme.lower(), "/" + path


def resolve(path: str) -> tuple[pafs.FileSystem, str]:
    """The file system holding ``path`` and the path in it (local: absolute, ``~`` expanded).

    Raises
    ------
    InputError
        A URI whose file system cannot be made (an unknown scheme, a
        file system this pyarrow was built without, no credentials).
    """
    if not is_uri(path):
        return _LOCAL, os.path.abspath(os.path.expanduser(path))
    base, scheme, rest = _split(path)
    with _made_lock:
        made = _made.get(base) if scheme not in SCHEMES else None
    if made is None:
        make = SCHEMES.get(scheme, pafs.FileSystem.from_uri)
        try:
            fs, root = make(base + "/")
        except (OSError, ValueError) as exc:  # pyarrow's errors are one or the other
            raise InputError(f"{path}: cannot reach its file system ({exc})") from None
        made = (fs, root.rstrip("/"))
        if scheme not in SCHEMES:  # a test's file system may change between tests: never kept
            with _made_lock:
                _made[base] = made
    fs, root = made
    full = root + rest
    return fs, full.rstrip("/") if len(full) > 1 else full


def to_uri(like: str, fs_path: str) -> str:
    """The URI of ``fs_path`` (a path in the file system of the URI ``like``)."""
    base, _, _ = _split(like)
    _, root = resolve(base + "/")
    root = root.rstrip("/")
    return base + fs_path[len(root):] if root else base + (fs_path if fs_path.startswith("/") else "/" + fs_path)


def info(path: str) -> pafs.FileInfo:
    """``FileInfo`` (type, size, mtime) of ``path``; its type is NotFound for a missing file.

    Raises
    ------
    InputError
        The file system cannot be asked (no permission, no connection).
    """
    fs, p = resolve(path)
    try:
        return fs.get_file_info(p)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot look it up ({exc})") from None


def listing(path: str, recursive: bool = False) -> list[tuple[str, str]]:
    """(URI, path relative to ``path``) of every file under the directory URI ``path``."""
    fs, p = resolve(path)
    p = p.rstrip("/")
    try:
        infos = fs.get_file_info(pafs.FileSelector(p, recursive=recursive))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot list it ({exc})") from None
    return [(to_uri(path, i.path), i.path[len(p):].lstrip("/")) for i in infos if i.type == pafs.FileType.File]


def glob_uri(pattern: str) -> list[str]:
    """Files whose URIs match ``pattern`` by the shell's rules, as Python's ``glob`` has them:
    ``*``, ``?`` and ``[...]`` within one path component, ``**`` for any depth; names that
    start with '.' only for a pattern component that does too."""
    base, _, rest = _split(pattern)
    parts = [c for c in rest.split("/") if c]
    fixed = 0
    while fixed < len(parts) and not any(ch in parts[fixed] for ch in "*?["):
        fixed += 1
    root = base + "/" + "/".join(parts[:fixed])
    wanted = parts[fixed:]
    if not wanted:
        return []
    if info(root).type != pafs.FileType.Directory:
        return []
    recursive = len(wanted) > 1 or "**" in wanted
    return [uri for uri, rel in listing(root, recursive) if _matches(rel.split("/"), wanted)]


def _matches(names: list[str], patterns: list[str]) -> bool:
    if not patterns:
        return not names
    if patterns[0] == "**":
        return _matches(names, patterns[1:]) or (bool(names) and not names[0].startswith(".")
                                                 and _matches(names[1:], patterns))
    if not names or (names[0].startswith(".") and not patterns[0].startswith(".")):
        return False
    return fnmatch.fnmatchcase(names[0], patterns[0]) and _matches(names[1:], patterns[1:])


def join(directory: str, name: str) -> str:
    """``directory/name`` for a local path or a URI."""
    return directory.rstrip("/") + "/" + name if is_uri(directory) else os.path.join(directory, name)


def require_local(path, what: str) -> None:
    """Refuse a URI where only a local path will do (``what`` names the path's role)."""
    if is_uri(os.fspath(path)):
        raise InputError(f"{what} {path}: must be a local path (a model directory's arrays are "
                         "memory-mapped files; copy it to a local disk)")
