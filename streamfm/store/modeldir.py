"""The model directory: a JSON manifest plus memory-mapped ``.npy`` arrays.

Layout::

    DIR/manifest.json          the commit point (see below)
    DIR/ckpt-000042/<name>.npy the arrays of the committed checkpoint
    DIR/ckpt-000037/<name>.npy a checkpoint the manifest keeps (e.g. the best epoch's)
    DIR/metrics.jsonl          one JSON record per line, appended
    DIR/.lock                  flock()ed by the trainer; holds its pid
    DIR/<other files>          the caller's (``install``), e.g. held-out rows

``manifest.json`` is the caller's JSON object plus the fields the store owns
(:mod:`streamfm.store.manifest`).

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

Why a crash never leaves a mix of two checkpoints, and why saving from memory
maps of the current checkpoint is safe: see :mod:`streamfm.store.checkpoints`.

One writer at a time: a trainer holds :meth:`ModelDir.lock` for its whole
run.  Readers (``predict``, ``info``) need no lock: if a trainer commits and
deletes the checkpoint a reader's manifest named, :meth:`ModelDir.load`
re-reads the manifest and opens the new one.

``ModelDir`` is the store's one public object, kept in one module: its
methods' docstrings are the directory's contract for every caller, while
the mechanics live beside it (``manifest``, ``checkpoints``, ``blocks``,
``arrays``, ``lock``, ``metrics_log``).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import threading
from typing import Any, Iterator, Mapping

import numpy as np

from streamfm.errors import InputError
from streamfm.io.atomic import atomic_write_bytes, dumps_json, fsync_dir, fsync_path, temporary_path
from streamfm.io.filesystems import require_local
from streamfm.store import blocks as block_files, checkpoints, manifest as manifests
from streamfm.store.arrays import ARRAY_NAME_RE, CHEAP_VERIFY_BYTES, array_meta, prepare_array
from streamfm.store.blocks import Blocks
from streamfm.store.lock import LOCK, exclusive_lock
from streamfm.store.manifest import CKPT_RE, FORMAT_VERSION, MANIFEST
from streamfm.store.metrics_log import METRICS, append_record, drop_records_after, read_records

__all__ = ["FORMAT_VERSION", "ModelDir"]

MMAP_MODES = ("r", "r+", "c", None)
#: load(verify=...): the largest array checked against its checksum
VERIFY = {"cheap": CHEAP_VERIFY_BYTES, "all": float("inf"), "none": 0}

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
        require_local(path, "model directory")  # its arrays are memory-mapped: a URI gets one clear error
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
        """Whether a committed ``manifest.json`` is there."""
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
        return manifests.read_manifest(self.path)

    # ------------------------------------------------------------------ lock

    @contextlib.contextmanager
    def lock(self) -> Iterator["ModelDir"]:
        """Hold the directory exclusively (one trainer at a time).

        ``fcntl.flock`` on ``DIR/.lock``, non-blocking, released when the
        ``with`` block ends or the process dies, even by ``kill -9`` (see
        :func:`~streamfm.store.lock.exclusive_lock`).  Re-entrant within one
        ``ModelDir`` object.
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
        checkpoints.make_dir(self.path)
        with exclusive_lock(self.path) as fd:
            try:
                self._lock_fd = fd
                self._remove_leftovers(self._referenced())
                yield self
            finally:
                self._lock_fd = None

    # ------------------------------------------------------------------ save

    def save(self, manifest: Mapping[str, Any], arrays: Mapping[str, np.ndarray], *,
             keep: Mapping[str, str | None] | None = None, blocks: Blocks | None = None) -> str:
        """Write a new checkpoint and commit it atomically.

        At every instant, a crash leaves either the previous committed
        checkpoint or this one loadable, never a mix (see
        :mod:`streamfm.store.checkpoints`).
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
        blocks : store.blocks.Blocks, optional
            Arrays of which only the changed blocks may be written (:mod:`streamfm.store.blocks`).

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
        prepared = {name: prepare_array(name, value) for name, value in arrays.items()}
        with self._save_mutex:
            checkpoints.make_dir(self.path)
            manifests.refuse_newer_format(self.path)
            current = manifests.committed_manifest(self.path)
            number = checkpoints.next_number(self.path, current)
            name = manifests.checkpoint_name(number)
            metas = {key: array_meta(arr) for key, arr in prepared.items()}
            extends = block_files.plan(blocks, current)
            chain = block_files.new_chain(blocks, extends, name)
            # Serialise first: a manifest JSON cannot hold (or a bad keep) fails before any write.
            dumps_json(manifests.make_record(
                manifest, name, metas, number,
                manifests.resolve_keep(self.path, keep or {}, current, name, metas, chain), chain))
            whole, delta = block_files.split(blocks, extends, prepared)
            crcs = checkpoints.write_checkpoint(self.path, name, number, whole, delta)
            # a chain's tracked arrays are read from its base: they keep the base file's checksum
            base = current["arrays"] if extends is not None else {}
            metas = {key: array_meta(arr, crcs[key] if key in whole else base.get(key, {}).get("crc32"))
                     for key, arr in prepared.items()}
            kept = manifests.resolve_keep(self.path, keep or {}, current, name, metas, chain)
            record = manifests.make_record(manifest, name, metas, number, kept, chain)
            text = dumps_json(record) + "\n"
            atomic_write_bytes(self.path / MANIFEST, text.encode("utf-8"))
            # Committed.  Only now may the previous checkpoint go.
            self._remove_leftovers(manifests.named(record))
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
                raise manifests.damaged(self.path, f"checkpoint directory {name} kept as {role!r} is missing")
            record = manifests.make_record(manifest, name, entry["arrays"], manifests.serial(current), {},
                                           entry.get("chain"))
            text = dumps_json(record) + "\n"
            atomic_write_bytes(self.path / MANIFEST, text.encode("utf-8"))
            self._remove_leftovers(manifests.named(record))
        return name

    # ------------------------------------------------------------------ load

    def load(self, mmap_mode: str | None = "r", *, kept: str | None = None,
             verify: str = "cheap") -> tuple[dict, dict[str, np.ndarray]]:
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
        verify : {"cheap", "all", "none"}, default "cheap"
            Which arrays are checked against the checksums the manifest
            records: those of at most ``CHEAP_VERIFY_BYTES`` (16 MiB), every
            one (reads the whole checkpoint), or none.

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
            the manifest, an array that does not match its checksum); the
            message names the file.
        """
        if mmap_mode not in MMAP_MODES:
            raise ValueError(f"mmap_mode must be one of {MMAP_MODES}, not {mmap_mode!r}")
        if verify not in VERIFY:
            raise ValueError(f"verify must be one of {', '.join(VERIFY)}, not {verify!r}")
        for _ in range(_LOAD_ATTEMPTS):
            manifest = self.read_manifest()
            if kept is not None:
                entry = (manifest.get("kept") or {}).get(kept)
                if entry is None:
                    raise InputError(f"model directory {self.path} keeps no checkpoint as {kept!r}")
                manifest = dict(manifest, checkpoint=entry["checkpoint"], arrays=entry["arrays"],
                                chain=entry.get("chain"))
            try:
                return manifest, checkpoints.open_arrays(self.path, manifest, mmap_mode, VERIFY[verify])
            except FileNotFoundError as exc:
                missing = exc
                # A trainer may have committed a newer checkpoint, and deleted
                # this one, since the manifest was read: then try the new one.
                if manifest["checkpoint"] in (self._referenced() or ()):
                    break
        ckpt = manifest["checkpoint"]
        if not (self.path / ckpt).is_dir():
            raise manifests.damaged(self.path, f"checkpoint directory {ckpt} named by {MANIFEST} is missing")
        raise manifests.damaged(self.path, f"{ckpt}/{pathlib.Path(missing.filename).name} is missing")

    # ------------------------------------------------------------------ other files

    def temp_path(self, name: str) -> pathlib.Path:
        """Where to write a file that :meth:`install` will later move to ``DIR/name``.

        A hidden, unique name in the directory (created if missing), so the
        rename is atomic; if its writer dies, the next save or lock removes it
        (this object's saves and locks leave it alone until it is installed).
        """
        _check_file_name(name)
        checkpoints.make_dir(self.path)
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
        append_record(self.path, record)

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
        return read_records(self.path)

    def drop_metrics_after(self, t: int) -> int:
        """Remove the metrics records of a model trained beyond step ``t`` (the committed
        checkpoint's): records no checkpoint holds.  Returns how many there were."""
        return drop_records_after(self.path, t)

    # ------------------------------------------------------------------ helpers

    def _referenced(self) -> set[str] | None:
        """The checkpoints a valid manifest names (committed and kept) whose directories exist;
        None without a valid manifest whose checkpoint exists."""
        manifest = manifests.committed_manifest(self.path)
        if manifest is None or not (self.path / manifest["checkpoint"]).is_dir():
            return None
        return {name for name in manifests.named(manifest) if (self.path / name).is_dir()}

    def _remove_leftovers(self, keep: set[str] | None) -> None:
        checkpoints.remove_leftovers(self.path, keep, self._temps)


def _check_file_name(name: str) -> None:
    if (not isinstance(name, str) or not ARRAY_NAME_RE.match(name) or CKPT_RE.match(name)
            or name in (MANIFEST, METRICS, LOCK)):
        raise ValueError(f"{name!r} cannot name a file of the model directory")
