"""The model directory: a JSON manifest plus memory-mapped ``.npy`` arrays.

Layout::

    DIR/manifest.json          the commit point (see below)
    DIR/ckpt-000042/<name>.npy the arrays of the committed checkpoint
    DIR/ckpt-000037/<name>.npy a checkpoint the manifest keeps (e.g. the best epoch's)
    DIR/metrics.jsonl          one JSON record per line, appended
    DIR/.lock                  flock()ed by the trainer; holds its pid
    DIR/<other files>          the caller's (``install``), e.g. held-out rows

``manifest.json`` is the caller's JSON object plus the fields the store
owns: ``format_version``, ``checkpoint`` (the directory holding the arrays),
``arrays`` (``{name: {"shape": [...], "dtype": "float64"}}``), ``saved_at``
(ISO 8601, UTC), ``checkpoint_serial`` (the highest checkpoint number the
directory has written, so numbers are never reused) and, when the caller
keeps other checkpoints, ``kept`` (``{role: {"checkpoint": name, "arrays":
{...}}}``).

Kept checkpoints
----------------
A trainer may want an older checkpoint kept beside the committed one (the
best epoch so far, which becomes the result when the run ends).  ``save(...,
keep={"best": name})`` records it in the new manifest, and no checkpoint a
committed manifest names, as its checkpoint or under ``kept``, is ever
deleted; ``keep={"best": None}`` keeps the checkpoint that very call writes.
``promote(manifest, "best")`` commits a kept checkpoint as the result: a new
manifest names it (no array is written again, so its arrays stay bit for bit
what they were), and the other checkpoints become leftovers.

Why a crash never leaves a mix of two checkpoints
-------------------------------------------------
:meth:`ModelDir.save` never writes into a committed checkpoint.  It writes
the arrays into ``DIR/.tmp-ckpt-<pid>-<n>-<hex>``, fsyncs every file and the
directory, renames it to ``ckpt-<n>`` and fsyncs ``DIR``; only then does it
replace ``manifest.json`` atomically (temporary file, fsync, ``os.replace``,
fsync ``DIR``).  Until that ``os.replace`` the old manifest names the old,
untouched checkpoint; after it the new manifest names a checkpoint whose
files are already durable.  Older checkpoint directories are deleted only
after the commit.  Leftovers of a crash (temporary directories, a renamed but
uncommitted ``ckpt-<n>``, a checkpoint no longer kept, the temporary file
of an ``install``) are removed at the next save or lock.

Saving from memory maps of the current checkpoint
-------------------------------------------------
The trainer trains on copy-on-write maps (``load(mmap_mode="c")``) and saves
them back.  That is safe: the new files are new inodes in a new directory;
the old files are only read.  Once the new checkpoint is committed the old
directory is deleted while the trainer still maps its files: on Linux (POSIX)
an unlinked file lives on until its last mapping is closed, so the arrays
stay valid; the disk space is freed when they are dropped (re-``load()`` the
new checkpoint to release it).  On Windows deletion would fail; it is best
effort and retried at the next save.

One writer at a time: a trainer holds :meth:`ModelDir.lock` for its whole
run.  Readers (``predict``, ``info``) need no lock: if a trainer commits and
deletes the checkpoint a reader's manifest named, :meth:`ModelDir.load`
re-reads the manifest and opens the new one.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import pathlib
import re
import secrets
import shutil
import threading
from typing import Any, Iterator, Mapping

import numpy as np

from streamfm.errors import InputError
from streamfm.io.atomic import (atomic_write_bytes, dumps_json, fsync_dir, fsync_path, temporary_path,
                                   write_and_fsync)

__all__ = ["FORMAT_VERSION", "ModelDir"]

FORMAT_VERSION = 1

MANIFEST = "manifest.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"

# Fields of manifest.json that save() writes; a caller's values are replaced,
# so a manifest returned by load() can be saved again as it is.
STORE_FIELDS = ("format_version", "checkpoint", "arrays", "saved_at", "checkpoint_serial", "kept")

MMAP_MODES = ("r", "r+", "c", None)

_CKPT_RE = re.compile(r"ckpt-(\d{6,})\Z")
# Leftovers a crashed save can leave: "<prefix><pid>-...".  The pid says
# whether their writer may still be running.
_TMP_CKPT_PREFIX = ".tmp-ckpt-"
# any atomic_output temporary (".<stem>.tmp-<pid>-<hex><suffix>"): the manifest's, install()'s
_TMP_FILE_RE = re.compile(r"\..+?\.tmp-(\d+-.*)\Z")
_PID_RE = re.compile(r"(\d+)-")
# Array names become file names: no separators, no leading dot.
_ARRAY_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")
_NPY_MAGIC = b"\x93NUMPY"
# Attempts at opening a checkpoint that a concurrent trainer keeps replacing.
_LOAD_ATTEMPTS = 5


class ModelDir:
    """A streamfm model directory: manifest, checkpoints, metrics, lock.

    Parameters
    ----------
    path : str or os.PathLike
        The directory.  It is created by :meth:`lock`, :meth:`save` and
        :meth:`append_metrics` if missing.

    Attributes
    ----------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile
    >>> model = ModelDir(pathlib.Path(tempfile.mkdtemp()) / "model")
    >>> with model.lock():
    ...     name = model.save({"epoch": 1}, {"w": np.zeros(3)})
    >>> manifest, arrays = model.load()
    >>> name, manifest["epoch"], type(arrays["w"]).__name__
    ('ckpt-000001', 1, 'memmap')
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._lock_fd: int | None = None
        # save() from two threads of one process would race for the same
        # checkpoint number.
        self._save_mutex = threading.Lock()
        # temp_path() names handed out and not yet installed: this process's
        # files in the making, not leftovers
        self._temps: set[str] = set()

    def __repr__(self) -> str:
        return f"ModelDir({str(self.path)!r})"

    # ------------------------------------------------------------------ state

    def exists(self) -> bool:
        """Whether a committed ``manifest.json`` is there.

        Returns
        -------
        bool
        """
        return (self.path / MANIFEST).is_file()

    def read_manifest(self) -> dict:
        """Read and check ``manifest.json``.

        Returns
        -------
        dict
            The caller's fields plus ``format_version``, ``checkpoint``,
            ``arrays`` and ``saved_at``.

        Raises
        ------
        InputError
            No manifest (not a model directory), malformed JSON or fields,
            or a format newer than this streamfm reads.
        """
        try:
            raw = (self.path / MANIFEST).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise InputError(f"{self.path} is not a streamfm model directory (no {MANIFEST})") from None
        try:
            manifest = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise self._damaged(f"{MANIFEST} is not valid JSON ({exc})") from None
        self._check_manifest(manifest)
        return manifest

    # ------------------------------------------------------------------ lock

    @contextlib.contextmanager
    def lock(self) -> Iterator["ModelDir"]:
        """Hold the directory exclusively (one trainer at a time).

        ``fcntl.flock`` on ``DIR/.lock``, non-blocking.  The kernel releases
        it when the ``with`` block ends and also when the process dies, even
        by ``kill -9``: a stale lock cannot outlive its holder, which a pid
        file could.  The holder's pid is written into the file for the
        error message only.  Re-entrant within one ``ModelDir`` object.
        On acquiring, leftovers of crashed saves are removed.

        Yields
        ------
        ModelDir
            ``self``.

        Raises
        ------
        InputError
            Another process holds the lock, or ``path`` is not a directory.
        """
        if self._lock_fd is not None:
            yield self
            return
        self._make_dir()
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                pid = holder if holder.isdigit() else "unknown"
                raise InputError(
                    f"model directory {self.path} is in use by another trainer (pid {pid}); "
                    "wait for it to finish or stop it"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
            self._lock_fd = fd
            self._remove_leftovers(self._referenced())
            yield self
        finally:
            self._lock_fd = None
            os.close(fd)  # the last descriptor closed releases the flock

    # ------------------------------------------------------------------ save

    def save(self, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *,
             keep: Mapping[str, str | None] | None = None) -> str:
        """Write a new checkpoint and commit it atomically.

        At every instant, a crash leaves either the previous committed
        checkpoint or this one loadable, never a mix (see the module notes).
        Arrays may be memory maps of the current checkpoint.  Not safe
        against another process saving at the same time: hold :meth:`lock`.

        Parameters
        ----------
        manifest : mapping
            JSON-serialisable fields (numpy scalars are accepted).  The
            store's own fields (``format_version``, ``checkpoint``,
            ``arrays``, ``saved_at``, ``checkpoint_serial``, ``kept``) are
            overwritten; ``manifest`` itself is not modified.
        arrays : mapping of str to array_like
            Names are file names: letters, digits, ``_ . + -``, not starting
            with a dot.  Numeric, boolean, string and datetime dtypes;
            not object or structured.
        keep : mapping of str to (str or None), optional
            Other checkpoints the new manifest keeps, by role:
            ``{"best": "ckpt-000037"}`` names the committed checkpoint or one
            the committed manifest keeps; None is the checkpoint this call
            writes.  Kept checkpoints are not deleted while a committed
            manifest names them; a checkpoint no longer named is.

        Returns
        -------
        str
            The checkpoint's name, e.g. ``"ckpt-000042"``.

        Raises
        ------
        TypeError, ValueError
            A manifest JSON cannot represent, a bad array name or dtype, a
            ``keep`` naming a checkpoint the directory does not keep;
            raised before anything is written.
        InputError
            The directory holds a model of a newer format.
        OSError
            The disk is full or not writable.  The directory still holds a
            complete checkpoint: the previous one (or this one, if the
            failure came after the commit).
        """
        if not isinstance(manifest, Mapping):
            raise TypeError(f"manifest must be a mapping, not {type(manifest).__name__}")
        prepared = {name: _prepare_array(name, value) for name, value in arrays.items()}
        with self._save_mutex:
            self._make_dir()
            self._refuse_newer_format()
            current = self._committed_manifest()
            number = self._next_number(current)
            name = _checkpoint_name(number)
            metas = {key: _array_meta(arr) for key, arr in prepared.items()}
            kept = self._resolve_keep(keep or {}, current, name, metas)
            record = self._record(manifest, name, metas, number, kept)
            # Serialise first: a manifest JSON cannot hold fails before any write.
            text = dumps_json(record) + "\n"
            self._write_checkpoint(name, number, prepared)
            atomic_write_bytes(self.path / MANIFEST, text.encode("utf-8"))
            # Committed.  Only now may the previous checkpoint go.
            self._remove_leftovers(_named(record))
        return name

    def promote(self, manifest: Mapping[str, Any], role: str) -> str:
        """Commit the checkpoint kept as ``role`` as the result, with ``manifest``.

        No array is written: the new manifest names the kept checkpoint's
        directory, so its arrays are exactly those saved then.  The
        checkpoint committed until now, and every other kept one, become
        leftovers and are deleted after the commit.

        Parameters
        ----------
        manifest : mapping
            The caller's fields (as :meth:`save`; the store's are replaced).
        role : str
            A role of the committed manifest's ``kept`` table.

        Returns
        -------
        str
            The checkpoint's name.

        Raises
        ------
        ValueError
            The committed manifest keeps no checkpoint as ``role``.
        InputError
            No committed manifest, or the kept checkpoint's directory is missing.
        """
        if not isinstance(manifest, Mapping):
            raise TypeError(f"manifest must be a mapping, not {type(manifest).__name__}")
        with self._save_mutex:
            current = self.read_manifest()
            entry = (current.get("kept") or {}).get(role)
            if entry is None:
                raise ValueError(f"{self.path} keeps no checkpoint as {role!r}")
            name = entry["checkpoint"]
            if not (self.path / name).is_dir():
                raise self._damaged(f"checkpoint directory {name} kept as {role!r} is missing")
            record = self._record(manifest, name, entry["arrays"], self._serial(current), {})
            text = dumps_json(record) + "\n"
            atomic_write_bytes(self.path / MANIFEST, text.encode("utf-8"))
            self._remove_leftovers(_named(record))
        return name

    def _record(self, manifest: Mapping[str, Any], name: str, metas: dict, serial: int, kept: dict) -> dict:
        record = dict(manifest)
        record.pop("kept", None)
        record.update(
            format_version=FORMAT_VERSION,
            checkpoint=name,
            arrays=metas,
            saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
            checkpoint_serial=serial,
        )
        if kept:
            record["kept"] = kept
        return record

    def _resolve_keep(self, keep: Mapping[str, str | None], current: dict | None, name: str,
                      metas: dict) -> dict:
        """``{role: {"checkpoint", "arrays"}}`` for ``save(keep=...)``; fails before any write."""
        known = {}
        if current is not None:
            known = {entry["checkpoint"]: entry["arrays"] for entry in (current.get("kept") or {}).values()}
            known[current["checkpoint"]] = current["arrays"]
        kept = {}
        for role, ckpt in keep.items():
            if not isinstance(role, str) or not role:
                raise ValueError(f"a kept checkpoint's role must be a non-empty string, not {role!r}")
            if ckpt is None:
                kept[role] = {"checkpoint": name, "arrays": metas}
            elif ckpt in known and (self.path / ckpt).is_dir():
                kept[role] = {"checkpoint": ckpt, "arrays": known[ckpt]}
            else:
                raise ValueError(f"cannot keep {ckpt!r} as {role!r}: not a checkpoint {self.path} holds "
                                 "committed or kept")
        return kept

    def _write_checkpoint(self, name: str, number: int, arrays: dict[str, np.ndarray]) -> None:
        tmp = self.path / f"{_TMP_CKPT_PREFIX}{os.getpid()}-{number:06d}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            for key, arr in arrays.items():
                _write_npy(tmp / f"{key}.npy", arr)
            fsync_dir(tmp)
            os.rename(tmp, self.path / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # The new name must be on disk before a manifest can point at it.
        fsync_dir(self.path)

    def _next_number(self, current: dict | None) -> int:
        # Above every checkpoint directory present, committed or not, so an
        # uncommitted leftover is never reused (or renamed onto), and above
        # every number written before (a reader holding an old manifest never
        # opens a new checkpoint under an old name).
        numbers = [int(m.group(1)) for m in map(_CKPT_RE.match, self._entries()) if m]
        if current is not None:
            numbers.append(self._serial(current))
        return max(numbers, default=0) + 1

    @staticmethod
    def _serial(manifest: dict) -> int:
        """The highest checkpoint number a manifest's directory has written."""
        numbers = [int(_CKPT_RE.match(manifest["checkpoint"]).group(1))]
        numbers += [int(_CKPT_RE.match(e["checkpoint"]).group(1)) for e in (manifest.get("kept") or {}).values()]
        serial = manifest.get("checkpoint_serial")
        if isinstance(serial, int) and not isinstance(serial, bool):
            numbers.append(serial)
        return max(numbers)

    # ------------------------------------------------------------------ load

    def load(self, mmap_mode: str | None = "r", *, kept: str | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """Open the committed checkpoint (or one it keeps).

        Parameters
        ----------
        mmap_mode : {"r", "r+", "c", None}, default "r"
            Passed to :func:`numpy.load`: arrays are memory maps
            (:class:`numpy.memmap`) and a large model is not read into RAM.
            ``"c"`` (copy-on-write) is what a trainer wants: writes stay in
            memory until :meth:`save`.  ``"r+"`` writes into the committed
            checkpoint's files in place, which is not crash-safe.  None reads
            the arrays into memory.
        kept : str, optional
            Open the checkpoint the manifest keeps as this role instead
            (``save(keep=...)``); the manifest returned then has that
            checkpoint's ``checkpoint`` and ``arrays``.

        Returns
        -------
        manifest : dict
            As :meth:`read_manifest`.
        arrays : dict of str to numpy.ndarray

        Raises
        ------
        InputError
            Not a model directory, a newer format, or a damaged directory
            (a missing or corrupt file, a shape or dtype that disagrees with
            the manifest); the message names the file.
        """
        if mmap_mode not in MMAP_MODES:
            raise ValueError(f"mmap_mode must be one of {MMAP_MODES}, not {mmap_mode!r}")
        for _ in range(_LOAD_ATTEMPTS):
            manifest = self.read_manifest()
            if kept is not None:
                entry = (manifest.get("kept") or {}).get(kept)
                if entry is None:
                    raise InputError(f"model directory {self.path} keeps no checkpoint as {kept!r}")
                manifest = dict(manifest, checkpoint=entry["checkpoint"], arrays=entry["arrays"])
            try:
                return manifest, self._open_arrays(manifest, mmap_mode)
            except FileNotFoundError as exc:
                missing = exc
                # A trainer may have committed a newer checkpoint, and deleted
                # this one, since the manifest was read: then try the new one.
                if manifest["checkpoint"] in (self._referenced() or ()):
                    break
        ckpt = manifest["checkpoint"]
        if not (self.path / ckpt).is_dir():
            raise self._damaged(f"checkpoint directory {ckpt} named by {MANIFEST} is missing")
        raise self._damaged(f"{ckpt}/{pathlib.Path(missing.filename).name} is missing")

    def _open_arrays(self, manifest: dict, mmap_mode: str | None) -> dict[str, np.ndarray]:
        folder = self.path / manifest["checkpoint"]
        arrays = {}
        for name, meta in manifest["arrays"].items():
            path = folder / f"{name}.npy"
            shown = f"{manifest['checkpoint']}/{path.name}"
            with open(path, "rb") as f:  # FileNotFoundError: handled by load()
                if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
                    raise self._damaged(f"{shown} is not a .npy file")
            try:
                arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
            except FileNotFoundError:
                raise  # deleted meanwhile: handled by load()
            except (OSError, ValueError, EOFError) as exc:
                raise self._damaged(f"{shown} cannot be read ({exc})") from None
            expected_shape, expected_dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
            if arr.shape != expected_shape or arr.dtype != expected_dtype:
                raise self._damaged(
                    f"{shown} holds a {arr.dtype} array of shape {arr.shape} but {MANIFEST} "
                    f"says {expected_dtype} {expected_shape}"
                )
            arrays[name] = arr
        return arrays

    # ------------------------------------------------------------------ other files

    def temp_path(self, name: str) -> pathlib.Path:
        """Where to write a file that :meth:`install` will later move to ``DIR/name``.

        A hidden, unique name in the directory (created if missing), so the
        rename is atomic; if its writer dies, the next save or lock removes it
        (this object's saves and locks leave it alone until it is installed).
        """
        _check_file_name(name)
        self._make_dir()
        tmp = temporary_path(self.path / name)
        self._temps.add(tmp.name)
        return tmp

    def install(self, tmp: str | os.PathLike, name: str) -> pathlib.Path:
        """Move a finished file from :meth:`temp_path` to ``DIR/name``, durably, replacing any.

        Returns
        -------
        pathlib.Path
            The installed file.
        """
        _check_file_name(name)
        target = self.path / name
        fsync_path(tmp)  # its writer (pyarrow) may have closed it without
        os.replace(tmp, target)
        self._temps.discard(pathlib.Path(tmp).name)
        fsync_dir(self.path)
        return target

    def discard(self, name: str) -> None:
        """Delete ``DIR/name`` if it is there (a file installed earlier)."""
        _check_file_name(name)
        try:
            (self.path / name).unlink()
        except FileNotFoundError:
            return
        fsync_dir(self.path)

    # ------------------------------------------------------------------ metrics

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        """Append one JSON record as a line of ``DIR/metrics.jsonl``.

        The line is written with one ``write`` and fsynced.  A line torn by
        a crash (no final newline) is cut off first, so the file stays one
        valid record per line.

        Parameters
        ----------
        record : mapping
            JSON-serialisable (numpy scalars accepted).
        """
        if not isinstance(record, Mapping):
            raise TypeError(f"a metrics record must be a mapping, not {type(record).__name__}")
        data = (dumps_json(record, indent=None) + "\n").encode("utf-8")
        self._make_dir()
        fd = os.open(self.path / METRICS, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            end = _complete_lines_end(fd, size)
            if end != size:
                os.ftruncate(fd, end)
            write_and_fsync(fd, data)
        finally:
            os.close(fd)
        if size == 0:
            fsync_dir(self.path)  # a new file's directory entry

    def read_metrics(self) -> list[dict]:
        """All records of ``DIR/metrics.jsonl``, oldest first.

        Returns
        -------
        list of dict
            Empty if there is no metrics file.  A torn last line (a crash
            while appending) is skipped.

        Raises
        ------
        InputError
            A complete line that is not a JSON object.
        """
        try:
            raw = (self.path / METRICS).read_bytes()
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
                raise self._damaged(f"{METRICS} line {number} is not a JSON object")
            records.append(record)
        return records

    # ------------------------------------------------------------------ helpers

    def _damaged(self, what: str) -> InputError:
        return InputError(f"model directory {self.path} is damaged: {what}")

    def _newer(self, version: int) -> InputError:
        return InputError(
            f"model directory {self.path} was written by a newer streamfm (format {version}); upgrade streamfm"
        )

    def _make_dir(self) -> None:
        if self.path.is_dir():
            return
        try:
            self.path.mkdir(parents=True)
        except FileExistsError:
            if not self.path.is_dir():
                raise InputError(f"model directory {self.path} is not a directory") from None
            return  # created meanwhile by someone else
        fsync_dir(self.path.parent)

    def _entries(self) -> list[str]:
        try:
            return os.listdir(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _refuse_newer_format(self) -> None:
        # An older streamfm must not overwrite a newer one's model with its
        # own format (the newer manifest is otherwise treated as absent).
        try:
            manifest = json.loads((self.path / MANIFEST).read_bytes())
        except (OSError, ValueError):
            return
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        if isinstance(version, int) and version > FORMAT_VERSION:
            raise self._newer(version)

    def _committed_manifest(self) -> dict | None:
        """The valid committed manifest, if there is one."""
        try:
            return self.read_manifest()
        except InputError:
            return None

    def _referenced(self) -> set[str] | None:
        """The checkpoints a valid manifest names (committed and kept) whose directories exist;
        None without a valid manifest whose checkpoint exists."""
        manifest = self._committed_manifest()
        if manifest is None or not (self.path / manifest["checkpoint"]).is_dir():
            return None
        return {name for name in _named(manifest) if (self.path / name).is_dir()}

    def _remove_leftovers(self, keep: set[str] | None) -> None:
        """Delete every checkpoint directory not in ``keep`` and dead writers' temporaries.

        With ``keep=None`` (no valid committed checkpoint: a damaged or new
        directory) checkpoint directories are left alone: they may be all
        that is left of a model.
        """
        for entry in self._entries():
            path = self.path / entry
            if _CKPT_RE.match(entry):
                if keep is not None and entry not in keep:
                    shutil.rmtree(path, ignore_errors=True)
            elif entry.startswith(_TMP_CKPT_PREFIX):
                if _writer_gone(entry[len(_TMP_CKPT_PREFIX):]):
                    shutil.rmtree(path, ignore_errors=True)
            elif (match := _TMP_FILE_RE.match(entry)) is not None:
                if entry not in self._temps and _writer_gone(match.group(1)):
                    with contextlib.suppress(OSError):
                        path.unlink()

    def _check_manifest(self, manifest: Any) -> None:
        if not isinstance(manifest, dict):
            raise self._damaged(f"{MANIFEST} is not a JSON object")
        version = manifest.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise self._damaged(f"{MANIFEST} has no valid format_version")
        if version > FORMAT_VERSION:
            raise self._newer(version)
        checkpoint = manifest.get("checkpoint")
        if not isinstance(checkpoint, str) or not _CKPT_RE.match(checkpoint):
            raise self._damaged(f"{MANIFEST} has no valid checkpoint name")
        arrays = manifest.get("arrays")
        if not isinstance(arrays, dict):
            raise self._damaged(f"{MANIFEST} has no valid 'arrays' table")
        for name, meta in arrays.items():
            if not _ARRAY_NAME_RE.match(name) or not _valid_array_meta(meta):
                raise self._damaged(f"{MANIFEST} has an invalid entry for array {name!r}")
        kept = manifest.get("kept", {})
        if not isinstance(kept, dict) or not all(
                isinstance(e, dict) and isinstance(e.get("checkpoint"), str) and _CKPT_RE.match(e["checkpoint"])
                and isinstance(e.get("arrays"), dict) and all(_valid_array_meta(m) for m in e["arrays"].values())
                for e in kept.values()):
            raise self._damaged(f"{MANIFEST} has an invalid 'kept' table")


def _named(manifest: dict) -> set[str]:
    """The checkpoints a manifest names: its own and those it keeps."""
    return {manifest["checkpoint"]} | {e["checkpoint"] for e in (manifest.get("kept") or {}).values()}


def _check_file_name(name: str) -> None:
    if (not isinstance(name, str) or not _ARRAY_NAME_RE.match(name) or _CKPT_RE.match(name)
            or name in (MANIFEST, METRICS, LOCK)):
        raise ValueError(f"{name!r} cannot name a file of the model directory")


# ---------------------------------------------------------------------- arrays


def _checkpoint_name(number: int) -> str:
    return f"ckpt-{number:06d}"


def _prepare_array(name: Any, value: Any) -> np.ndarray:
    if not isinstance(name, str) or not _ARRAY_NAME_RE.match(name):
        raise ValueError(
            f"array name {name!r} cannot be a file name: use letters, digits, '_', '.', '+', '-', "
            "not starting with '.'"
        )
    # asarray keeps memory maps as views: nothing is copied here.
    arr = np.asarray(value)
    if arr.dtype.hasobject or arr.dtype.kind == "V":
        raise TypeError(f"array {name!r} has dtype {arr.dtype}: object and structured arrays cannot be saved")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _dtype_text(dtype: np.dtype) -> str:
    # "float64" reads best; "<U5" for the few dtypes whose name does not
    # parse back ("str160").
    try:
        if np.dtype(dtype.name) == dtype:
            return dtype.name
    except (TypeError, ValueError):
        pass
    return dtype.str


def _array_meta(arr: np.ndarray) -> dict:
    return {"shape": list(arr.shape), "dtype": _dtype_text(arr.dtype)}


def _valid_array_meta(meta: Any) -> bool:
    if not isinstance(meta, dict):
        return False
    shape = meta.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        return False
    dtype = meta.get("dtype")
    if not isinstance(dtype, str):
        return False
    try:
        np.dtype(dtype)
    except (TypeError, ValueError):
        return False
    return True


def _write_npy(path: pathlib.Path, arr: np.ndarray) -> None:
    # "xb": a fresh file in a fresh directory; np.save to an open file
    # writes a memory map straight from its pages (no copy).
    with open(path, "xb") as f:
        np.save(f, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


# ---------------------------------------------------------------------- files


def _writer_gone(rest: str) -> bool:
    """Whether the process that named a temporary ``<pid>-...`` is not running.

    Our own temporaries count as gone: they are leftovers of a failed save
    (a save in progress holds ``_save_mutex`` and never cleans).
    """
    match = _PID_RE.match(rest)
    if match is None:
        return True
    pid = int(match.group(1))
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


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
