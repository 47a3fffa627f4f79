"""``manifest.json``, the model directory's commit point: its store-owned fields and their checks.

The manifest is the caller's JSON object plus the fields the store owns:
``format_version``, ``checkpoint`` (the directory holding the arrays),
``arrays`` (``{name: {"shape": [...], "dtype": "float64"}}``), ``saved_at``
(ISO 8601, UTC), ``checkpoint_serial`` (the highest checkpoint number the
directory has written, so numbers are never reused) and, when the caller
keeps other checkpoints, ``kept`` (``{role: {"checkpoint": name, "arrays":
{...}}}``) and, when the caller tracks arrays by blocks, ``chain`` (the
checkpoints that hold them: store/blocks.py; kept entries carry their own),
and ``manifest_crc32``, a CRC-32 of everything else in a canonical JSON form
(``content_crc32``): the arrays' files carry their own checksums, and this
one makes a damaged manifest an error too -- a flipped digit of a
hyper-parameter or of the coding scale is still valid JSON and would
otherwise load as a different model. A manifest without it (written before
it was added) is checked field by field only.
"""
from __future__ import annotations

import datetime
import json
import pathlib
import re
import zlib
from typing import Any, Mapping

from streamfm.errors import InputError
from streamfm.io.atomic import dumps_json
from streamfm.store.arrays import ARRAY_NAME_RE, valid_array_meta

FORMAT_VERSION = 1

MANIFEST = "manifest.json"

CKPT_RE = re.compile(r"ckpt-(\d{6,})\Z")

#: the manifest's own checksum field
CHECKSUM = "manifest_crc32"


def content_crc32(manifest: Mapping[str, Any]) -> int:
    """CRC-32 of the manifest's fields but its checksum, as sorted, compact JSON (a form that
    reading and writing the file again does not change: Python's JSON floats round-trip)."""
    rest = {k: v for k, v in manifest.items() if k != CHECKSUM}
    return zlib.crc32(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def checkpoint_name(number: int) -> str:
    return f"ckpt-{number:06d}"


def damaged(path: pathlib.Path, what: str) -> InputError:
    return InputError(f"model directory {path} is damaged: {what}")


def newer(path: pathlib.Path, version: int) -> InputError:
    return InputError(
        f"model directory {path} was written by a newer streamfm (format {version}); upgrade streamfm"
    )


def read_manifest(path: pathlib.Path) -> dict:
    """Read and check ``path/manifest.json`` (see :meth:`ModelDir.read_manifest`)."""
    try:
        raw = (path / MANIFEST).read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{path} is not a streamfm model directory (no {MANIFEST})") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged(path, f"{MANIFEST} is not valid JSON ({exc})") from None
    check_manifest(path, manifest)
    return manifest


def committed_manifest(path: pathlib.Path) -> dict | None:
    """The valid committed manifest, if there is one."""
    try:
        return read_manifest(path)
    except InputError:
        return None


def refuse_newer_format(path: pathlib.Path) -> None:
    """Raise if the directory holds a manifest of a newer format, valid or not."""
    # An older streamfm must not overwrite a newer one's model with its
    # own format (the newer manifest is otherwise treated as absent).
    try:
        manifest = json.loads((path / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise newer(path, version)


def valid_chain(chain: Any) -> bool:
    """Whether ``chain`` is absent or a well-formed chain entry (store/blocks.py)."""
    if chain is None:
        return True
    return (isinstance(chain, dict) and isinstance(chain.get("names"), list)
            and isinstance(chain.get("static", []), list)
            and all(isinstance(n, str) and ARRAY_NAME_RE.match(n) for n in chain["names"] + chain.get("static", []))
            and all(isinstance(chain.get(k), int) and chain[k] > 0 for k in ("rows", "block"))
            and isinstance(chain.get("base"), str) and bool(CKPT_RE.match(chain["base"]))
            and isinstance(chain.get("deltas"), list)
            and all(isinstance(d, str) and CKPT_RE.match(d) for d in chain["deltas"]))


def check_manifest(path: pathlib.Path, manifest: Any) -> None:
    if not isinstance(manifest, dict):
        raise damaged(path, f"{MANIFEST} is not a JSON object")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise damaged(path, f"{MANIFEST} has no valid format_version")
    if version > FORMAT_VERSION:
        raise newer(path, version)
    if CHECKSUM in manifest and manifest[CHECKSUM] != content_crc32(manifest):
        raise damaged(path, f"{MANIFEST} does not match its checksum (the file was changed after it was written)")
    checkpoint = manifest.get("checkpoint")
    if not isinstance(checkpoint, str) or not CKPT_RE.match(checkpoint):
        raise damaged(path, f"{MANIFEST} has no valid checkpoint name")
    arrays = manifest.get("arrays")
    if not isinstance(arrays, dict):
        raise damaged(path, f"{MANIFEST} has no valid 'arrays' table")
    for name, meta in arrays.items():
        if not ARRAY_NAME_RE.match(name) or not valid_array_meta(meta):
            raise damaged(path, f"{MANIFEST} has an invalid entry for array {name!r}")
    kept = manifest.get("kept", {})
    if not isinstance(kept, dict) or not all(
            isinstance(e, dict) and isinstance(e.get("checkpoint"), str) and CKPT_RE.match(e["checkpoint"])
            and isinstance(e.get("arrays"), dict) and all(valid_array_meta(m) for m in e["arrays"].values())
            and valid_chain(e.get("chain")) for e in kept.values()):
        raise damaged(path, f"{MANIFEST} has an invalid 'kept' table")
    if not valid_chain(manifest.get("chain")):
        raise damaged(path, f"{MANIFEST} has an invalid 'chain' entry")


def named(manifest: dict) -> set[str]:
    """The checkpoints a manifest names: its own and those it keeps, and their chains' (store/blocks.py)."""
    entries = [manifest, *(manifest.get("kept") or {}).values()]
    out = set()
    for e in entries:
        chain = e.get("chain")
        out |= {e["checkpoint"]} | (set() if not chain else {chain["base"], *chain["deltas"]})
    return out


def serial(manifest: dict) -> int:
    """The highest checkpoint number a manifest's directory has written."""
    numbers = [int(CKPT_RE.match(manifest["checkpoint"]).group(1))]
    numbers += [int(CKPT_RE.match(e["checkpoint"]).group(1)) for e in (manifest.get("kept") or {}).values()]
    value = manifest.get("checkpoint_serial")
    if isinstance(value, int) and not isinstance(value, bool):
        numbers.append(value)
    return max(numbers)


def make_record(manifest: Mapping[str, Any], name: str, metas: dict, serial: int, kept: dict,
                chain: dict | None = None) -> dict:
    """The manifest to commit: the caller's fields and the store's (a caller's values of the
    store's fields are replaced, so a manifest returned by ``load()`` can be saved again as it is)."""
    record = dict(manifest)
    record.pop("kept", None)
    record.pop("chain", None)
    record.update(
        format_version=FORMAT_VERSION,
        checkpoint=name,
        arrays=metas,
        saved_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        checkpoint_serial=serial,
    )
    if kept:
        record["kept"] = kept
    if chain:
        record["chain"] = chain
    record.pop(CHECKSUM, None)
    # the checksum of the record as it will read back (numpy values become JSON numbers)
    record[CHECKSUM] = content_crc32(json.loads(dumps_json(record)))
    return record


def resolve_keep(path: pathlib.Path, keep: Mapping[str, str | None], current: dict | None, name: str,
                 metas: dict, chain: dict | None = None) -> dict:
    """``{role: {"checkpoint", "arrays"[, "chain"]}}`` for ``save(keep=...)``; fails before any write."""
    known = {}
    if current is not None:
        known = {entry["checkpoint"]: entry for entry in (current.get("kept") or {}).values()}
        known[current["checkpoint"]] = current
    kept = {}
    for role, ckpt in keep.items():
        if not isinstance(role, str) or not role:
            raise ValueError(f"a kept checkpoint's role must be a non-empty string, not {role!r}")
        if ckpt is None:
            kept[role] = {"checkpoint": name, "arrays": metas, **({"chain": chain} if chain else {})}
        elif ckpt in known and (path / ckpt).is_dir():
            entry = known[ckpt]
            kept[role] = {"checkpoint": ckpt, "arrays": entry["arrays"],
                          **({"chain": entry["chain"]} if entry.get("chain") else {})}
        else:
            raise ValueError(f"cannot keep {ckpt!r} as {role!r}: not a checkpoint {path} holds "
                             "committed or kept")
    return kept
