"""The model store: model directory, crash-safe checkpoints, atomic writes, graceful stop."""
from streamfm.store.atomic import atomic_output, atomic_write_bytes, atomic_write_json, dumps_json, fsync_dir
from streamfm.store.modeldir import FORMAT_VERSION, ModelDir
from streamfm.store.signals import GracefulStop

__all__ = [
    "FORMAT_VERSION",
    "GracefulStop",
    "ModelDir",
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_json",
    "dumps_json",
    "fsync_dir",
]
