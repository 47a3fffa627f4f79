"""The model store: model directory, crash-safe checkpoints, atomic writes."""
from streamfm.io.atomic import atomic_output, atomic_write_bytes, atomic_write_json, dumps_json, fsync_dir
from streamfm.store.modeldir import FORMAT_VERSION, ModelDir

__all__ = [
    "FORMAT_VERSION",
    "ModelDir",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_json",
    "dumps_json",
    "fsync_dir",
]
