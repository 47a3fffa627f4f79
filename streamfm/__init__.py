"""streamfm: streaming Factorization Machines and Locally Linear FMs.

The estimators are scikit-learn estimators over the numba kernels; ``train``,
``resume`` and ``load`` are the file pipeline the command line runs. They are
imported on first use, so ``streamfm info`` and ``convert`` start fast.
"""

__version__ = "0.1.0"

_LAZY = {
    "FMClassifier": "streamfm.models.estimators",
    "FMRegressor": "streamfm.models.estimators",
    "LLFMClassifier": "streamfm.models.estimators",
    "LLFMRegressor": "streamfm.models.estimators",
    "TrainOptions": "streamfm.train.trainer",
    "train": "streamfm.train.trainer",
    "resume": "streamfm.train.trainer",
    "load": "streamfm.train.trainer",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'streamfm' has no attribute {name!r}")
