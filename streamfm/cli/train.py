"""``streamfm train``: a model from files, continuing one, or resuming an interrupted run."""
from __future__ import annotations

import argparse
import os
import sys

from streamfm.cli.compiling import note_compiling
from streamfm.cli.data import DATA_HELP, add_data_options, add_quiet, data_paths, read_options
from streamfm.errors import InputError


#: model options: (flag, Config field, type, help); the help's default is read from Config. Default
#: None = "not given", so continuing a model can tell a changed hyper-parameter from an omitted one.
_MODEL_OPTIONS = [
    ("--method", "method", str, "fm, llfm-do, llfm-apl or llfm-jo"),
    ("--rank", "rank", int, "factor rank r"),
    ("--anchors", "anchors", "anchors", "anchor points m, or auto: from the training rows and features and the "
                                        "memory budget, min(sqrt(rows), rows / (8 features)) within 50 to 512 "
                                        "(docs/dense.md)"),
    ("--neighbors", "n_neighbors", int, "neighbours k of the soft-assignment coding, do/apl"),
    ("--beta", "beta", float, "soft-assignment sharpness, in units of the coding scale"),
    ("--rho", "rho", float, "llfm-jo Lipschitz-to-noise ratio, in units of the coding scale"),
    ("--candidates", "n_candidates", int, "anchors the FAISS search returns per row"),
    ("--rebuild-every", "rebuild_every", int, "rows between anchor-index rebuilds"),
    ("--optimizer", "optimizer", str, "FM steps: adagrad (per-parameter, bounded per row), normalized "
                                      "(divided by the gradient norm, decaying) or sgd (plain, decaying)"),
    ("--eta0", "eta0", float, "FM step size (default: 0.1 for adagrad, 0.5 for normalized, 0.01 for sgd)"),
    ("--t0", "t0", float, "step decay eta0*t0/(t0+t) of sgd, normalized and the anchors; 0 = one epoch of rows"),
    ("--eta-anchor", "eta_anchor", float, "anchor step size, relative to the coding scale (default: 0.3 on up to "
                                          "1,000 features, 0.05 on wider data)"),
    ("--anchor-epochs", "anchor_epochs", int, "epochs (of --t0 rows) in which the anchors move, then they stay; "
                                              "0 = every epoch (default: every epoch on up to 1,000 features, "
                                              "the first only on wider data)"),
    ("--l2-w", "l2_w", float, "L2 on linear weights: the penalty l2/2 ||w||^2 over the whole data, "
                              "a prior of that precision"),
    ("--l2-v", "l2_v", float, "L2 on factors, as --l2-w"),
    ("--l2-local", "l2_local", float, "llfm-*: the anchors' FMs' L2 as a multiple of --l2-w and --l2-v, "
                                      "beside the global FM"),
    ("--init-std", "init_std", float, "initial factor standard deviation"),
    ("--multiclass", "multiclass", str, "softmax or ovr (one-vs-rest, as the paper's authors ran it)"),
    ("--seed", "seed", int, "random seed"),
]
_CHOICES = {"method": "METHODS", "optimizer": "OPTIMIZERS", "multiclass": "MULTICLASS_LOSSES"}
#: the other model options' value names in --help, as the paper and docs/command-line.md name them
_METAVARS = {"rank": "R", "anchors": "M", "n_neighbors": "K", "beta": "B", "rho": "RHO", "n_candidates": "K",
             "rebuild_every": "N", "eta0": "ETA", "t0": "T", "eta_anchor": "ETA", "anchor_epochs": "N", "l2_w": "L",
             "l2_v": "L",
             "l2_local": "X", "init_std": "S", "seed": "N"}


def _anchors(text: str):
    """--anchors: a positive count or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of anchors or auto, got {text!r}") from None


def _model_option_help(field: str, text: str) -> str:
    from streamfm.models.config import Config

    default = getattr(Config(), field)
    return text if default is None else f"{text} (default: {default})"


def add_train_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model from files (or continue one)",
        description="Train FM / LLFM on data streamed from files into the model directory --model. "
                    "If the directory holds a model, continue training it on the new data (keeping its "
                    "standardisation, classes, anchors and optimiser state). `--resume DIR` finishes an "
                    "interrupted run. Without DATA, trains on the Banana data shipped with streamfm. "
                    "DATA - reads standard input, which is first copied to a temporary file beside the "
                    "model directory (training reads its data more than once) and removed when the command "
                    "ends; such a run cannot be resumed.",
    )
    p.add_argument("data", nargs="*", metavar="DATA", help=DATA_HELP)
    p.add_argument("--model", metavar="DIR", help="model directory (created if missing)")
    p.add_argument("--resume", metavar="DIR", help="continue the interrupted run in DIR")
    p.add_argument("--allow-changed-data", action="store_true",
                   help="with --resume: continue even though the run's data files changed since it started "
                        "(by default such a run is refused)")
    p.add_argument("--valid", nargs="+", metavar="DATA",
                   help="data evaluated after every epoch (and watched by --early-stop)")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"),
                   help="the task (default: detected from the labels)")
    p.add_argument("--scale", choices=("auto", "standard", "maxabs", "none"), default=None,
                   help="how features are scaled, from the scan pass's statistics, and recorded in the model "
                        "(default: auto). auto, per feature: binary (0/1) features kept as they are, features "
                        "non-zero in at least half of the rows standardised (centred, divided by the standard "
                        "deviation), any other feature divided by its largest absolute value (not centred); "
                        "standard: every feature divided by its standard deviation, and centred if the data is "
                        "a dense table or has at most 1,000 features; maxabs: every feature divided by its "
                        "largest absolute value; none: values as they are. A model that exists keeps its "
                        "scaling: --scale must then be left out or name the model's mode")
    from streamfm.models import config

    g = p.add_argument_group("the model")
    for flag, field, typ, text in _MODEL_OPTIONS:
        choices = getattr(config, _CHOICES[field]) if field in _CHOICES else None
        g.add_argument(flag, dest=f"cfg_{field}", type=_anchors if typ == "anchors" else typ, default=None, choices=choices,
                       metavar=None if choices else _METAVARS[field],
                       help=_model_option_help(field, text))
    g.add_argument("--no-global-fm", dest="cfg_global_fm", action="store_const", const=False, default=None,
                   help="llfm-*: the paper's model, the local mixture alone (default: a global FM beside it)")
    g.add_argument("--paper-anchor-gradient", dest="cfg_jo_exact", action="store_const", const=False,
                   default=None, help="llfm-jo: the paper's approximate anchor gradient (drops the lambda term)")
    g.add_argument("--bits", type=int, default=None, metavar="B",
                   help="hash each (anchor, feature) pair into a table of 2^B rows (float32), whatever the "
                        "features and anchors (default: the exact layout when it fits --memory-budget, else "
                        "the largest table that does)")
    g.add_argument("--memory-budget", default=None, metavar="SIZE",
                   help="the most the model's parameters may take, e.g. 800M or 2G; a larger model stops at "
                        "once (default: half of the memory available, under a cgroup limit if any)")
    r = p.add_argument_group("the run")
    from streamfm.training.options import TrainOptions

    run_defaults = TrainOptions()
    r.add_argument("--epochs", type=int, default=run_defaults.epochs, metavar="N",
                   help=f"passes over the data, at most (default: {run_defaults.epochs})")
    r.add_argument("--early-stop", type=int, default=run_defaults.early_stop, metavar="N",
                   help="stop after N epochs in a row without a lower validation log loss (RMSE for "
                        "regression) and keep the best epoch's model; 0 = off, train every epoch and keep "
                        f"the last (default: {run_defaults.early_stop}). Validates on --valid, else on more "
                        "than 10,000 rows on held-out training rows (--validation-fraction), else not at all")
    r.add_argument("--validation-fraction", type=float, default=0.1, metavar="F",
                   help="without --valid: the share of training rows held out for early stopping, chosen "
                        "by --seed from each row's place in the data, never trained on (default: 0.1)")
    r.add_argument("--batch-rows", type=int, default=4096, metavar="N", help="rows per kernel call (default: 4096)")
    r.add_argument("--shuffle-buffer", type=int, default=0, metavar="N",
                   help="rows held for shuffling (default: 0 = sized to ~8M stored values, at most 100,000)")
    r.add_argument("--no-shuffle", action="store_true", help="read rows in file order every epoch")
    r.add_argument("--sample-size", type=int, default=10_000, metavar="N", help="rows sampled for k-means (default: 10000)")
    r.add_argument("--checkpoint-rows", type=int, default=0, metavar="N", help="checkpoint every N rows (default: off)")
    r.add_argument("--checkpoint-seconds", type=float, default=600.0, metavar="T",
                   help="checkpoint every T seconds (default: 600)")
    r.add_argument("--threads", type=int, default=1, metavar="N",
                   help="training threads (default: 1, deterministic); N > 1 trains Hogwild-style on shared "
                        "parameters without locks (and splits each anchor search between the threads): for "
                        "machines with more than 2 cores (the default already searches on a second one), not "
                        "reproducible bit for bit")
    r.add_argument("--max-rows", type=int, default=0, metavar="N",
                   help="stop (resumably) after N rows in this invocation (default: no limit)")
    r.add_argument("--ignore-extra-features", action="store_true",
                   help="drop feature indices beyond the model's (and report how many) instead of stopping")
    r.add_argument("--ignore-unknown-labels", action="store_true",
                   help="skip rows whose class the model has never seen (and report how many)")
    e = p.add_argument_group("the engine")
    e.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process (default); ray: data-parallel workers on Ray over Parquet shards "
                        '(pip install "streamfm[ray]")')
    e.add_argument("--workers", type=int, default=2, metavar="N", help="ray: worker actors (default: 2)")
    e.add_argument("--address", metavar="ADDRESS",
                   help="ray: join the cluster at ADDRESS (HOST:PORT, ray://HOST:PORT or auto); "
                        "default: start a local Ray instance sized to this machine")
    e.add_argument("--sync-rows", type=int, default=0, metavar="R",
                   help="ray: rows each worker trains between two merges (default: 65536)")
    e.add_argument("--worker-retries", type=int, default=2, metavar="N",
                   help="ray: restarts after a worker dies before the run stops resumably (default: 2)")
    e.add_argument("--no-scale-steps", action="store_true",
                   help="ray: workers take the model's steps, not steps times --workers (see docs/scaling.md)")
    add_data_options(p)
    add_quiet(p)
    p.set_defaults(func=run_train, train_parser=p)


#: flags --resume accepts: they do not change the run (--scale is checked against the model's)
_RESUME_FLAGS = {"resume", "allow_changed_data", "quiet", "progress", "scale", "help", "data", "model"}


def _flags_changing_the_run(args: argparse.Namespace) -> list[str]:
    """The flags given besides --resume that would change an interrupted run (it goes on as it
    was started, so they would be ignored)."""
    given = []
    for action in args.train_parser._actions:
        if action.dest in _RESUME_FLAGS or not action.option_strings:
            continue
        value = getattr(args, action.dest, None)
        if value == action.default:
            continue
        if action.const is not None and value != action.const:
            continue  # the value of another flag of the same destination (--one-based for --zero-based)
        given.append(action.option_strings[-1])
    return list(dict.fromkeys(given))


def _embedded(name: str) -> str:
    from importlib.resources import files

    return str(files("streamfm") / "data" / f"{name}.parquet")


def run_train(args: argparse.Namespace) -> int:
    from streamfm.models.config import Config
    from streamfm.models.memory import parse_bytes
    from streamfm.run import resume, train
    from streamfm.training.options import TrainOptions

    note_compiling(args.quiet, ("train_rows",))
    if args.resume:
        if args.data or args.model:
            raise InputError("--resume DIR continues a run as it was started: give no DATA and no --model")
        changing = _flags_changing_the_run(args)
        if changing:
            raise InputError(f"--resume DIR continues a run as it was started, so {', '.join(changing)} would be "
                             f"ignored: leave {'it' if len(changing) == 1 else 'them'} out (a finished model trains "
                             "further with: streamfm train DATA --model DIR)")
        if args.scale is not None:
            from streamfm.store.modeldir import ModelDir
            from streamfm.training.setup import check_scale

            check_scale(ModelDir(args.resume).read_manifest()["model"], args.scale, args.resume)
        summary = resume(args.resume, quiet=args.quiet or None, progress=args.progress,
                         allow_changed_data=args.allow_changed_data)
        if summary.get("already_complete"):
            print(f"the run in {args.resume} is complete; to train more, give data: "
                  f"streamfm train DATA... --model {args.resume}")
            return 0
        return _report_run(summary, args.resume)
    if not args.model:
        raise InputError("name the model directory with --model DIR (or continue a run with --resume DIR)")
    if args.allow_changed_data:
        raise InputError("--allow-changed-data goes with --resume DIR")
    data, valid = args.data, args.valid
    if not data:
        data, valid = [_embedded("banana-train")], valid or [_embedded("banana-test")]
        if not args.quiet:
            print("no DATA given: training on the Banana data shipped with streamfm "
                  "(3,533 rows; validated on its 1,767 held-out rows)", flush=True)
    given = {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}
    config = Config(**given) if given else None
    options = TrainOptions(
        epochs=args.epochs, batch_rows=args.batch_rows, shuffle_buffer=args.shuffle_buffer,
        shuffle=not args.no_shuffle, sample_size=args.sample_size, checkpoint_rows=args.checkpoint_rows,
        checkpoint_seconds=args.checkpoint_seconds, max_rows=args.max_rows, task=args.task, scale=args.scale,
        ignore_extra_features=args.ignore_extra_features, ignore_unknown_labels=args.ignore_unknown_labels,
        quiet=args.quiet, progress=args.progress, threads=args.threads, early_stop=args.early_stop,
        validation_fraction=args.validation_fraction, bits=args.bits,
        memory_budget=None if args.memory_budget is None else parse_bytes(args.memory_budget))
    engine = args.engine
    if engine == "ray":
        from streamfm.engines.ray.options import RayOptions

        engine = RayOptions(workers=args.workers, address=args.address, sync_rows=args.sync_rows,
                            worker_retries=args.worker_retries, scale_steps=not args.no_scale_steps)
    if valid and "-" in valid:
        raise InputError("standard input (-) can be the training data only, not --valid")
    spool_dir = os.path.dirname(os.path.abspath(args.model))  # beside the model: space the user chose
    with data_paths(data, args.format, spool_dir) as paths:
        summary = train(paths, args.model, config=config, options=options, data_options=read_options(args),
                        valid=valid, engine=engine)
    return _report_run(summary, args.model, stdin=paths != list(data))


def _report_run(summary: dict, model_dir: str, stdin: bool = False) -> int:
    stopped = summary.get("stopped")
    if stopped:
        then = (" The run read standard input, which is not kept: it cannot be resumed; train again into a new "
                "--model" if stdin else f" Continue with: streamfm train --resume {model_dir}")
        print(f"stopped ({stopped}) at epoch {summary['epoch'] + 1}, row {summary['position']:,}; "
              f"checkpoint saved.{then}", file=sys.stderr)
        return {"SIGINT": 130, "SIGTERM": 143}.get(stopped, 0)
    kept = summary.get("kept_epoch")
    print(f"model saved in {model_dir}" + (f" (epoch {kept}'s: {summary['stop_reason']})" if kept else ""))
    return 0
