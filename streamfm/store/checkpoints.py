"""Checkpoint directories: writing one durably, numbering, opening, and removing leftovers.

Why a crash never leaves a mix of two checkpoints
-------------------------------------------------
A save never writes into a committed checkpoint.  :func:`write_checkpoint`
writes the arrays into ``DIR/.tmp-ckpt-<pid>-<n>-<hex>``, fsyncs every file
and the directory, renames it to ``ckpt-<n>`` and fsyncs ``DIR``; only then
does :meth:`~streamfm.store.modeldir.ModelDir.save` replace ``manifest.json``
atomically (temporary file, fsync, ``os.replace``, fsync ``DIR``).  Until
that ``os.replace`` the old manifest names the old, untouched checkpoint;
after it the new manifest names a checkpoint whose files are already
durable.  Older checkpoint directories are deleted only after the commit.
Leftovers of a crash (temporary directories, a renamed but uncommitted
``ckpt-<n>``, a checkpoint no longer kept, the temporary file of an
``install``) are removed at the next save or lock
(:func:`remove_leftovers`).

Numbers never repeat: a new checkpoint's number is above every checkpoint
directory present and every number the manifest records
(``checkpoint_serial``), so a reader holding an old manifest never opens a
new checkpoint under an old name.

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
"""
from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import re
import secrets
import shutil
import tokenize

import numpy as np

from streamfm.errors import DiskFullError, InputError
from streamfm.io.atomic import fsync_dir
from streamfm.store import blocks
from streamfm.store.arrays import CHEAP_VERIFY_BYTES, NPY_MAGIC, verify, write_npy
from streamfm.store.manifest import CKPT_RE, MANIFEST, damaged, serial

# Leftovers a crashed save can leave: "<prefix><pid>-...".  The pid says
# whether their writer may still be running.
TMP_CKPT_PREFIX = ".tmp-ckpt-"
# any atomic_output temporary (".<stem>.tmp-<pid>-<hex><suffix>"): the manifest's, install()'s
_TMP_FILE_RE = re.compile(r"\..+?\.tmp-(\d+-.*)\Z")
_PID_RE = re.compile(r"(\d+)-")


def make_dir(path: pathlib.Path) -> None:
    """Create the model directory (and its parents) if missing, durably."""
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        if not path.is_dir():
            raise InputError(f"model directory {path} is not a directory") from None
        return  # created meanwhile by someone else
    fsync_dir(path.parent)


def entries(path: pathlib.Path) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def next_number(path: pathlib.Path, current: dict | None) -> int:
    """The number of the next checkpoint of the directory whose committed manifest is ``current``."""
    # Above every checkpoint directory present, committed or not, so an
    # uncommitted leftover is never reused (or renamed onto), and above
    # every number written before.
    numbers = [int(m.group(1)) for m in map(CKPT_RE.match, entries(path)) if m]
    if current is not None:
        numbers.append(serial(current))
    return max(numbers, default=0) + 1


def write_checkpoint(path: pathlib.Path, name: str, number: int, arrays: dict[str, np.ndarray],
                     files: dict[str, np.ndarray] | None = None) -> dict[str, int]:
    """``path/name/<array>.npy`` (and ``<stem>.npy`` of ``files``: a delta's, store/blocks.py, each an
    array or a function called for it just before its file is written), every file and both
    directories fsynced, or nothing; returns the CRC-32 of each file's data.

    A full disk raises :class:`~streamfm.errors.DiskFullError` naming the
    file and the space the checkpoint needs (the previous checkpoint stays
    committed).
    """
    tmp = path / f"{TMP_CKPT_PREFIX}{os.getpid()}-{number:06d}-{secrets.token_hex(4)}"
    tmp.mkdir()
    crcs = {}
    try:
        everything = {**arrays, **(files or {})}
        for key, arr in everything.items():
            file = tmp / f"{key}.npy"
            try:
                crcs[key] = write_npy(file, arr() if callable(arr) else arr)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    need = sum(a().nbytes if callable(a) else a.nbytes for a in everything.values())
                    raise DiskFullError(f"no space left on device while writing {path / name / file.name}: "
                                        f"the checkpoint needs {need / 1e6:,.1f} MB; the previous checkpoint "
                                        "is kept") from None
                raise
        fsync_dir(tmp)
        os.rename(tmp, path / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # The new name must be on disk before a manifest can point at it.
    fsync_dir(path)
    return crcs


def open_arrays(path: pathlib.Path, manifest: dict, mmap_mode: str | None,
                verify_up_to: float = CHEAP_VERIFY_BYTES) -> dict[str, np.ndarray]:
    """The arrays of the checkpoint ``manifest`` names, checked against its table: shape, dtype,
    and the checksum of every array of at most ``verify_up_to`` bytes (0: none; inf: all).

    Raises FileNotFoundError for a file that is not there (a concurrent
    trainer may have deleted the checkpoint: the caller decides), and the
    directory's "damaged" InputError for anything else. Arrays a chain
    tracks (store/blocks.py) come from its base with its deltas written over
    them: copy-on-write maps for ``"r"``, so the files stay as written.
    """
    chain = manifest.get("chain")
    arrays = {}
    for name, meta in manifest["arrays"].items():
        folder = blocks.folder_of(manifest, name)
        file = path / folder / f"{name}.npy"
        shown = f"{folder}/{file.name}"
        mode = "c" if mmap_mode == "r" and chain and chain["deltas"] and name in chain["names"] else mmap_mode
        with open(file, "rb") as f:  # FileNotFoundError: the caller's
            if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise damaged(path, f"{shown} is not a .npy file")
        try:
            arr = np.load(file, mmap_mode=mode, allow_pickle=False)
        except FileNotFoundError:
            raise  # deleted meanwhile: the caller's
        except (OSError, ValueError, EOFError, SyntaxError, TypeError, MemoryError, tokenize.TokenError) as exc:
            # numpy parses the header as a Python literal: a damaged one fails in many ways
            raise damaged(path, f"{shown} cannot be read ({type(exc).__name__}: {exc})") from None
        expected_shape, expected_dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
        if arr.shape != expected_shape or arr.dtype != expected_dtype:
            raise damaged(
                path,
                f"{shown} holds a {arr.dtype} array of shape {arr.shape} but {MANIFEST} "
                f"says {expected_dtype} {expected_shape}",
            )
        if arr.nbytes <= verify_up_to:
            wrong = verify(name, arr, meta)
            if wrong is not None:
                raise damaged(path, f"{manifest['checkpoint']}/{wrong}")
        arrays[name] = arr
    if chain and chain["deltas"]:
        blocks.apply_deltas(path, chain, arrays, damaged)
    return arrays


def remove_leftovers(path: pathlib.Path, keep: set[str] | None, own_temps: set[str]) -> None:
    """Delete every checkpoint directory not in ``keep`` and dead writers' temporaries.

    With ``keep=None`` (no valid committed checkpoint: a damaged or new
    directory) checkpoint directories are left alone: they may be all that
    is left of a model.  ``own_temps``: temporary files this process is
    still writing (not leftovers).
    """
    for entry in entries(path):
        target = path / entry
        if CKPT_RE.match(entry):
            if keep is not None and entry not in keep:
                shutil.rmtree(target, ignore_errors=True)
        elif entry.startswith(TMP_CKPT_PREFIX):
            if _writer_gone(entry[len(TMP_CKPT_PREFIX):]):
                shutil.rmtree(target, ignore_errors=True)
        elif (match := _TMP_FILE_RE.match(entry)) is not None:
            if entry not in own_temps and _writer_gone(match.group(1)):
                with contextlib.suppress(OSError):
                    target.unlink()


def _writer_gone(rest: str) -> bool:
    """Whether the process that named a temporary ``<pid>-...`` is not running.

    Our own temporaries count as gone: they are leftovers of a failed save
    (a save in progress holds the directory's save mutex and never cleans).
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
