"""streamfm: streaming Factorization Machines and Locally Linear FMs.

The estimators are scikit-learn estimators over the numba kernels; ``train``,
``resume`` and ``load`` are the file pipeline the command line runs. They are
imported on first use, so ``streamfm info`` and ``convert`` start fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "Config": "streamfm.models.config",
    "FMClassifier": "streamfm.estimators",
    "FMRegressor": "streamfm.estimators",
    "LLFMClassifier": "streamfm.estimators",
    "LLFMRegressor": "streamfm.estimators",
    "RayOptions": "streamfm.engines.ray.options",
    "TrainOptions": "streamfm.training.options",
    "train": "streamfm.run",
    "resume": "streamfm.run",
    "load": "streamfm.run",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamfm' has no attribute {name!r}")
