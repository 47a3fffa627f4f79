"""A model's size before it is allocated, the memory budget, and the parameter store chosen from them.

Two stores (``StoreSpec.kind``):

- ``exact``: every FM owns W (p, C) and V (p, C, r), float64: n_fms x p x
  C x (1 + r) values, and as many again for AdaGrad's accumulators;
- ``hashed``: each (FM, feature) pair is hashed into a table of 2^bits
  slots shared by all FMs (kernels/hashing.py, models/table.py), float32,
  whose size does not grow with anchors x features.

``choose_store``: ``--bits B`` forces the hashed store with 2^B slots;
otherwise the exact store when its predicted size fits the budget, else the
hashed store with the largest B that does. Nothing fits: one ``InputError``
naming the ways out. The budget defaults to a fraction of the memory this
process can use (``available_memory``: the system's available memory, and a
cgroup's limit when one applies).
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass

from ..errors import InputError

#: the default budget, as a share of the available memory
BUDGET_FRACTION = 0.5
#: the hashed table's smallest and largest sizes, in bits (slot and tag share one 64-bit key)
MIN_BITS, MAX_BITS = 10, 32
#: per slot beside the parameters: its tag (uint32) and its dirty flags (uint8)
SLOT_OVERHEAD = 5


@dataclass(frozen=True)
class StoreSpec:
    """How a model's W and V are stored: ``kind`` exact or hashed, ``bits`` (hashed: 2^bits slots),
    ``dtype`` of the table (and of its AdaGrad accumulators)."""

    kind: str = "exact"
    bits: int = 0
    dtype: str = "float64"

    @property
    def hashed(self) -> bool:
        return self.kind == "hashed"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "StoreSpec":
        """The store a model meta records (none: exact, as every model before there was a choice)."""
        return cls(**d) if d else cls()

    def describe(self) -> str:
        if not self.hashed:
            return f"exact store ({self.dtype})"
        return f"hashed store: 2^{self.bits} = {1 << self.bits:,} slots ({self.dtype})"


def hashed_spec(bits: int) -> StoreSpec:
    return StoreSpec("hashed", int(bits), "float32")


def model_bytes(spec: StoreSpec, n_fms: int, p: int, C: int, r: int, adagrad: bool, m: int = 0,
                q: int = 0) -> int:
    """The predicted bytes of a model's trained arrays (parameters, accumulators, the hashed table's
    tags and flags); the anchors Z (m, q) and the biases are exact in both stores."""
    per_value = 2 if adagrad else 1  # parameters, and AdaGrad's accumulator of each
    exact_parts = (n_fms * C * 8 * per_value) + m * q * 8
    if spec.hashed:
        slots = 1 << spec.bits
        return exact_parts + slots * (C * (1 + r) * 4 * per_value + SLOT_OVERHEAD)
    return exact_parts + n_fms * p * C * (1 + r) * 8 * per_value


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 or v1), if it has one."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file) as fh:
                text = fh.read().strip()
            if text == "max":
                return None
            limit = int(text)
            with open(usage_file) as fh:
                usage = int(fh.read().strip())
        except (OSError, ValueError):
            continue
        if limit >= 1 << 60:  # v1's "no limit"
            return None
        return max(limit - usage, 0)
    return None


def available_memory() -> int:
    """Bytes this process may still allocate: the system's available memory, or less under a cgroup limit."""
    values = [v for v in (_meminfo_available(), _cgroup_room()) if v is not None]
    return min(values) if values else 8 << 30


def default_budget() -> int:
    return int(BUDGET_FRACTION * available_memory())


def format_bytes(n: float) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_bytes(text: str) -> int:
    """A size as the command line takes it: ``800M``, ``1.5G``, ``2GB``, ``1048576``."""
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(s[-1:], 1)
    number = s[:-1] if scale > 1 else s
    try:
        value = float(number)
    except ValueError:
        raise InputError(f"--memory-budget {text!r} is not a size (e.g. 800M, 1.5G)") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"--memory-budget {text!r} must be a positive size")
    return int(value * scale)


def choose_store(n_fms: int, p: int, C: int, r: int, adagrad: bool, *, m: int = 0, q: int = 0,
                 bits: int | None = None, budget: int | None = None) -> StoreSpec:
    """The store of a new model (see the module notes); raises InputError when none fits ``budget``
    bytes (None: ``default_budget()``)."""
    budget = default_budget() if budget is None else int(budget)
    size = lambda spec: model_bytes(spec, n_fms, p, C, r, adagrad, m, q)  # noqa: E731
    if bits is not None:
        if not MIN_BITS <= int(bits) <= MAX_BITS:
            raise InputError(f"--bits must be from {MIN_BITS} to {MAX_BITS}, got {bits}")
        spec = hashed_spec(bits)
        if size(spec) > budget:
            raise too_large(f"--bits {bits} needs {format_bytes(size(spec))}", budget)
        return spec
    exact = StoreSpec()
    if size(exact) <= budget:
        return exact
    # no more slots than pairs: beyond that a larger table only holds more empty slots
    most = max(MIN_BITS, min(MAX_BITS, math.ceil(math.log2(max(n_fms * p, 2)))))
    for b in range(most, MIN_BITS - 1, -1):
        if size(hashed_spec(b)) <= budget:
            return hashed_spec(b)
    raise too_large(f"the model needs {format_bytes(size(exact))} (exact) or "
                    f"{format_bytes(size(hashed_spec(MIN_BITS)))} (hashed, --bits {MIN_BITS})", budget)


def too_large(what: str, budget: int) -> InputError:
    return InputError(f"{what}, more than the memory budget of {format_bytes(budget)}. Give a larger "
                      f"--memory-budget, a smaller --bits, fewer --anchors, a lower --rank, or --method fm")
