"""``streamfm plot``: a model directory's learning curve (``metrics.jsonl``) as an image.

matplotlib is an optional extra (``pip install streamfm[plot]``), imported
only here, through its object API (no pyplot state, no display needed).
"""
from __future__ import annotations

import argparse
import os
import sys

from streamfm.errors import InputError, StreamFMError

PLOT_EXTRA = "streamfm needs matplotlib to plot: pip install streamfm[plot]"


def add_plot_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "plot", help="a learning-curve image from a model directory's metrics",
        description="Draw every epoch of metrics.jsonl: the training loss and the validation loss (log loss, "
                    "or RMSE for a regression) and, beside them, the validation accuracy and AUC (or MAE). "
                    "Runs that trained the model further on new data follow one another, split by dotted "
                    "lines; the epoch the directory keeps is marked. Needs matplotlib "
                    "(pip install streamfm[plot]).")
    p.add_argument("model", metavar="DIR", help="model directory")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="the image, *.png (or *.svg, *.pdf) (default: DIR/learning-curve.png)")
    p.set_defaults(func=run_plot)


def epochs_of(records: list[dict]) -> list[list[dict]]:
    """The metrics records as runs of epochs: an epoch written again after a crash (same ``epoch`` and
    ``t`` as the line before) replaces that line; an epoch number that does not grow starts a new run."""
    runs: list[list[dict]] = []
    for rec in records:
        last = runs[-1][-1] if runs else None
        if last is not None and rec["epoch"] == last["epoch"] and rec.get("t") == last.get("t"):
            runs[-1][-1] = rec
        elif last is None or rec["epoch"] <= last["epoch"]:
            runs.append([rec])
        else:
            runs[-1].append(rec)
    return runs


def run_plot(args: argparse.Namespace) -> int:
    from streamfm.io.atomic import atomic_output
    from streamfm.store.modeldir import ModelDir

    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise StreamFMError(PLOT_EXTRA) from None
    store = ModelDir(args.model)
    store.read_manifest()  # a model directory, or one clear error
    runs = epochs_of(store.read_metrics())
    if not runs:
        raise InputError(f"{args.model} has no epochs in metrics.jsonl yet: nothing to plot")
    out = args.output or os.path.join(args.model, "learning-curve.png")
    fmt = os.path.splitext(out)[1].lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise InputError(f"cannot tell the image format of {out!r}: name it *.png, *.svg or *.pdf")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise InputError(f"the output directory {os.path.dirname(os.path.abspath(out))} does not exist")
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    _draw(fig, runs, args.model)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    print(f"learning curve of {sum(map(len, runs))} epoch(s) written to {out}", file=sys.stderr)
    return 0


def _draw(fig, runs: list[list[dict]], title: str) -> None:
    flat = [rec for run in runs for rec in run]
    x = list(range(1, len(flat) + 1))
    valid = [rec.get("valid") or {} for rec in flat]
    loss_key = "rmse" if any("rmse" in v for v in valid) else "log_loss"
    other = [k for k in ("accuracy", "auc", "mae") if any(k in v for v in valid)]
    left = fig.add_subplot(1, 2 if other else 1, 1)
    left.plot(x, [rec["train_loss"] for rec in flat], "o-", label="train loss")
    if any(loss_key in v for v in valid):
        left.plot(x, [v.get(loss_key, float("nan")) for v in valid], "s-", label=f"valid {loss_key.replace('_', ' ')}")
    axes = [left]
    if other:
        right = fig.add_subplot(1, 2, 2)
        for k in other:
            right.plot(x, [v.get(k, float("nan")) for v in valid], "o-", label=f"valid {k}")
        axes.append(right)
    start = 0
    for run in runs[:-1]:
        start += len(run)
        for ax in axes:
            ax.axvline(start + 0.5, color="grey", linestyle=":")
    kept = flat[-1].get("kept_epoch")
    if kept is not None and 1 <= kept <= len(runs[-1]):
        for ax in axes:
            ax.axvline(len(flat) - len(runs[-1]) + kept, color="green", alpha=0.4, label="kept epoch")
    for ax in axes:
        ax.set_xlabel("epoch" if len(runs) == 1 else "epoch (all runs)")
        ax.legend()
        ax.grid(alpha=0.3)
    left.set_title(title)
