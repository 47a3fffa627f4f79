"""The page of the throughput benchmark, ``docs/performance.md``, written from the results ``R``.

Every figure on the page comes from ``R`` (``sections.run_all``, saved in
``bench-data/throughput-results.json``); the fixed text between the tables
(what streamfm does for speed, and why) is ``speed_notes.md`` next to this
module. ``targets_of`` states the targets the page checks, from ``R``.
"""
from __future__ import annotations

import os
import platform
import re
import time

import numpy as np

NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "speed_notes.md")
FLOOR = "floor: bare numba FM SGD, in memory"


def fmt_rate(x):
    return f"{x:,.0f}"


def cpu_rate(r):
    """Rows per CPU second (all threads) of the training call."""
    return fmt_rate(r["rows"] / r["cpu_seconds"]) if r.get("cpu_seconds") else ""


def anchor_index_kind(m: int, nprobe=None) -> str:
    """The index streamfm searched for m anchors (coding/search.py), in words."""
    from streamfm.coding.search import IVF_FROM, NPROBE, ivf_lists

    if m <= 32:
        return "all anchors (m <= K)"
    if m < IVF_FROM:
        return "flat"
    return f"IVF, {nprobe or NPROBE} of {ivf_lists(m)} lists"


# --------------------------------------------------------------------------- targets


def _met(fastest, per_round, target):
    """A ratio measured round by round meets its target when both the fastest epochs and the median round do."""
    return fastest >= target and (len(per_round) < 2 or float(np.median(per_round)) >= target)


def _warm_startup(runs):
    """Medians over the warm runs of (seconds to the first trained rows, whole-process seconds)."""
    warm = [v for k, v in runs.items() if not k.startswith("cold")]
    return float(np.median([v["first_chunk"] for v in warm])), float(np.median([v["wall"] for v in warm]))


def _rounds_note(per_round, lead):
    return (f"{lead}round by round {', '.join(f'{x:.2f}' for x in per_round)}, median "
            f"{float(np.median(per_round)):.2f}" if len(per_round) > 1 else "")


def targets_of(R):
    """The targets as (what, measured, met) rows, from the results in ``R``."""
    targets = []
    if "dense" in R:
        d = R["dense"]["best"]
        fl = d[FLOOR]["rows_per_s"]
        fm = d["streamfm fm (Parquet)"]
        per_round = [a / b for a, b in zip(fm.get("all_epoch_rows_per_s", []), d[FLOOR].get("all_rows_per_s", []))]
        targets.append(("streamfm fm end-to-end from Parquet >= 0.5 x floor (epoch rows/s)",
                        f"{fm['epoch_rows_per_s'] / fl:.2f} (fastest epoch {fmt_rate(fm['epoch_rows_per_s'])} vs "
                        f"fastest floor {fmt_rate(fl)}{_rounds_note(per_round, '; ')}; whole command "
                        f"{fm['rows_per_s'] / fl:.2f})",
                        _met(fm["epoch_rows_per_s"] / fl, per_round, 0.5)))
        jo = d["streamfm llfm-jo m=50 (Parquet)"]
        targets.append(("llfm-jo (m = 50) >= 1/5 of fm (dense)",
                        f"{jo['rows_per_s'] / fm['rows_per_s']:.2f} (epoch {jo['epoch_rows_per_s'] / fm['epoch_rows_per_s']:.2f})",
                        jo["rows_per_s"] / fm["rows_per_s"] >= 0.2))
    if "sparse" in R:
        s = R["sparse"]["best"]
        fm, lrq = s["streamfm fm (Parquet)"], s["VW --lrq ab10"]
        ok = fm["rows_per_s"] >= 2 * lrq["rows_per_s"] and fm["log_loss"] <= lrq["log_loss"]
        targets.append(("sparse: streamfm fm >= 2x VW --lrq rows/s at equal or better test log loss",
                        f"{fm['rows_per_s'] / lrq['rows_per_s']:.2f}x; log loss {fm['log_loss']:.4f} vs "
                        f"{lrq['log_loss']:.4f}", ok))
    a = R.get("anchors", {}).get("best", {})
    if "m=4096" in a and "m=64" in a:
        r = a["m=4096"]["epoch_rows_per_s"] / a["m=64"]["epoch_rows_per_s"]
        # the rounds alternate the m values: round i of one pairs with round i of the other
        per_round = [x / y for x, y in zip(a["m=4096"].get("all_epoch_rows_per_s", []),
                                           a["m=64"].get("all_epoch_rows_per_s", []))]
        note = f" (fastest epochs{_rounds_note(per_round, '; ')})" if len(per_round) > 1 else ""
        targets.append(("m = 4096 >= 1/4 of m = 64 (epoch rows/s)", f"{r:.2f}{note}", _met(r, per_round, 0.25)))
    if "startup" in R:
        first, whole = _warm_startup(R["startup"])
        targets.append(("a second `streamfm train` starts training within 2 s",
                        f"{first:.2f} s to the first trained chunk (median of {len(R['startup']) - 1} warm runs; "
                        f"whole process {whole:.2f} s)", first <= 2.0))
    return targets


# --------------------------------------------------------------------------- the page


def _commits_sentence(R) -> str:
    """Which commit of streamfm each section was measured at, in words."""
    by_commit = {}
    for sec, commit in R.get("commits", {}).items():
        if sec in R:
            by_commit.setdefault(commit, []).append(sec)
    if len(by_commit) == 1:
        return f"the streamfm code was the same throughout, commit {next(iter(by_commit))}"
    return "; ".join(f"sections {', '.join(secs)} at commit {c}" for c, secs in by_commit.items())


def _head(R, cmdline):
    several = "\n" in cmdline  # a run that kept sections of an earlier one (--keep)
    out = ["# Performance: throughput against the floor and the peers\n",
           "Every number on this page was measured by `tools/bench_throughput.py` on this machine, by the "
           + ("commands listed at the end (a later command re-measured some sections and kept the others' "
              f"results with `--keep`; {_commits_sentence(R)}). " if several else
              f"command at the end, in one run ({_commits_sentence(R)}). ")
           + "Each system was run in rounds (two, or as the command's `--rounds` says), alternating with the "
           "others, and its fastest round is shown; the ratios between systems of one run are the figures to read.\n"]
    loads = R.get("loads") or []
    median = float(np.median(loads)) if loads else float("nan")
    busy = ("other jobs shared the machine throughout, so absolute rates are far below what an idle machine "
            "gives; the rows per CPU second and the ratios within one round are the steadier figures."
            if median >= 2.5 else
            "about one core's worth, the benchmark's own; the machine is a virtual one on a shared host, and "
            "the same run's speed varied by up to a third from round to round, so the ratios within one round "
            "are the figures to read.")
    out.append(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
               f"{platform.system()}; page written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
               + (f" The 1-minute load average before the {len(loads)} measurements ranged from {min(loads):.1f} "
                  f"to {max(loads):.1f} (median {median:.1f}) on {os.cpu_count()} cores: {busy}" if loads else "")
               + "\n")
    from importlib.metadata import version

    vers = []
    for pkg in ("numpy", "numba", "pyarrow", "faiss-cpu", "vowpalwabbit", "river", "scikit-learn"):
        try:
            vers.append(f"{pkg} {version(pkg)}")
        except Exception:  # noqa: BLE001 - a peer that is not installed
            vers.append(f"{pkg} (not installed)")
    out.append("Versions: " + ", ".join(vers) + ".\n")
    out.append("rows/s = training rows / wall seconds of the training call (for streamfm the whole "
               "`streamfm train`: scan pass, k-means, one epoch from the file, checkpoints; not the interpreter "
               "start). \"rows per CPU s\" divides by the CPU time (user + sys, all threads) of the same call: "
               "on a shared machine it shows the work done, whatever share of the cores the call was given. "
               "\"epoch rows/s\" is streamfm's training pass alone (reading, decoding, shuffling, "
               "standardising, training). Peak RSS is the measuring process's high-water mark at the end of "
               "training. Test metrics are on held-out rows of the same generator.\n")
    return out


def _peers(R):
    out = []
    for d in ("dense", "sparse"):
        if d not in R:
            continue
        res, info = R[d]["best"], R[d]["info"]
        out += [f"## {info['title']}\n", info["desc"] + "\n"]
        ref = res.get("streamfm fm (Parquet)")
        out.append("| system | rows trained | rows/s | epoch rows/s | vs streamfm fm | rows per CPU s | test log loss "
                   "| test accuracy | peak RSS MB |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, r in res.items():
            er = fmt_rate(r["epoch_rows_per_s"]) if "epoch_rows_per_s" in r else ""
            ratio = f"{r['rows_per_s'] / ref['rows_per_s']:.3g}" if ref else ""
            out.append(f"| {name} | {r['rows']:,} | {fmt_rate(r['rows_per_s'])} | {er} | {ratio} | {cpu_rate(r)} | "
                       f"{r.get('log_loss', float('nan')):.4f} | {r.get('accuracy', float('nan')):.4f} | "
                       f"{r['train_peak_rss_mb']:.0f} |")
        out.append("")
        out += [f"- {line}" for line in info.get("notes", [])]
        out += ["", "Commands:\n", "```", *info["commands"], "```\n"]
    return out


def _targets(R):
    if "targets" not in R:
        return []
    out = ["## Targets (ratios measured in this run)\n",
           "A ratio measured round by round is met when both the fastest epochs and the median round meet it "
           "(the machine is shared: one round's speed says little on its own).\n",
           "| target | measured | met |", "|---|---|---|"]
    out += [f"| {t[0]} | {t[1]} | {'yes' if t[2] else 'NO'} |" for t in R["targets"]]
    return out + [""]


def _earlier_commits(R):
    if "before_after" not in R:
        return []
    from tools.throughput.sections import BEFORE_COMMITS

    res = R["before_after"]["best"]
    first = BEFORE_COMMITS[0]
    out = [f"## Against earlier commits (A/B of {', '.join(BEFORE_COMMITS)} against the current code)\n",
           f"The same `streamfm train` runs (dense Parquet, one epoch, default options) on the code of each commit "
           f"(extracted by `tools/harness.py`'s `code_at`), alternating in one run. {first} reads in the training "
           "thread, computes the gradient norm in a second pass over the row and runs FAISS on OpenMP threads; "
           f"{BEFORE_COMMITS[1]} has those changes but not the read-ahead depth of a shuffle round, the gathering "
           f"shuffle, the fm fast path, numba scan moments or the IVF search; {BEFORE_COMMITS[2]} has those but "
           "not the dense fm kernel for full-width rows, shared index arrays or the one-pass wide-table "
           "transpose.\n",
           f"| run | rows/s (whole train) | epoch rows/s | rows per CPU s | speed-up (epoch) vs {first} |",
           "|---|---:|---:|---:|---:|"]
    for name, r in res.items():
        base = res.get(f"{name.split()[0]} {first}") or r
        out.append(f"| {name} | {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | {cpu_rate(r)} | "
                   f"{r['epoch_rows_per_s'] / base['epoch_rows_per_s']:.2f} |")
    return out + [""]


def _sparse_llfm(R):
    if "sparse_llfm" not in R:
        return []
    r = R["sparse_llfm"]
    return ["## llfm-jo on the sparse data, and what it costs\n",
            "Every anchor owns a full FM over all p features: for p = 2^20, m = 50, C = 1, r = 10 the "
            "parameters are 50 x 2^20 x (1 + 10) float64 = 4.6 GB in the exact store, allocated and "
            "initialised before the first row, and written whole by every checkpoint (one at the start, one "
            "at the end of every epoch); measured with a budget it fits in, one epoch over the sparse "
            "training rows" + (f" ({r['note']})" if r.get("note") else "") + ":\n",
            "| rows/s (whole train) | epoch rows/s | peak RSS MB | model directory MB | test log loss | test accuracy "
            "| mean k |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | {r['train_peak_rss_mb']:.0f} | "
            f"{r['model_dir_mb']:.0f} | {r['log_loss']:.4f} | {r['accuracy']:.4f} | {r['mean_k']:.2f} |", ""]


def _breakdowns(R):
    out = []
    for key, title in (("breakdown", "Where llfm-jo's time goes (dense data, m = 50)"),
                       ("breakdown_fm", "Where fm's time goes (dense data)")):
        if key not in R:
            continue
        b = R[key]
        out += [f"## {title}\n", b["desc"] + "\n", "| stage | seconds | share |", "|---|---:|---:|"]
        parts = dict(b["parts"])
        tot = sum(parts.values())
        out += [f"| {k} | {v:.2f} | {100 * v / tot:.0f}% |" for k, v in parts.items()]
        out += [f"| total ({b['rows']:,} rows, {b['rows'] / b['seconds']:,.0f} rows/s, one thread) | "
                f"{b['seconds']:.2f} | |", ""]
    return out


def _anchors(R):
    if "anchors" not in R:
        return []
    out = ["## Anchor scaling (llfm-jo, dense data)\n", R["anchors"]["desc"] + "\n",
           "| m | index | rows/s | epoch rows/s | vs m=64 (epoch) | us per row (epoch) | us per row per neighbour "
           "| candidate-miss rate | wanted more than K | mean k | peak RSS MB |",
           "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    res = R["anchors"]["best"]
    ref = res.get("m=64")
    for name, r in res.items():
        m = int(name[2:])
        vs = f"{r['epoch_rows_per_s'] / ref['epoch_rows_per_s']:.2f}" if ref else ""
        out.append(f"| {m} | {anchor_index_kind(m, r.get('search_nprobe'))} | {fmt_rate(r['rows_per_s'])} | "
                   f"{fmt_rate(r['epoch_rows_per_s'])} | {vs} | {1e6 / r['epoch_rows_per_s']:.2f} | "
                   f"{1e6 / r['epoch_rows_per_s'] / max(r['mean_k'], 1e-9):.2f} | "
                   f"{100 * (r['candidate_miss_rate'] or 0):.3f}% | "
                   f"{100 * (r['wanted_more_rate'] or 0):.3f}% | {r['mean_k']:.2f} | {r['train_peak_rss_mb']:.0f} |")
    return out + [""]


def _scaling(R):
    if "scaling" not in R:
        return []
    out = ["## Data scaling (streamfm fm, dense Parquet, one epoch)\n",
           "| rows | wall s (whole train) | epoch s | rows/s | wall / 1x wall | peak RSS MB |",
           "|---:|---:|---:|---:|---:|---:|"]
    res = R["scaling"]["best"]
    w1 = res["1x"]["seconds"]
    out += [f"| {r['rows']:,} ({name}) | {r['seconds']:.2f} | {r['epoch_seconds']:.2f} | "
            f"{fmt_rate(r['rows_per_s'])} | {r['seconds'] / w1:.2f} | {r['train_peak_rss_mb']:.0f} |"
            for name, r in res.items()]
    return out + [""]


def _threads(R):
    if "threads" not in R:
        return []
    out = ["## Hogwild threads (opt-in `--threads N`)\n", R["threads"]["desc"] + "\n",
           "| run | rows/s | epoch rows/s | speed-up (epoch) | test log loss | test accuracy |",
           "|---|---:|---:|---:|---:|---:|"]
    res = R["threads"]["best"]
    for name, r in res.items():
        base = res[name.replace("threads=2", "threads=1")]
        out.append(f"| {name} | {fmt_rate(r['rows_per_s'])} | {fmt_rate(r['epoch_rows_per_s'])} | "
                   f"{r['epoch_rows_per_s'] / base['epoch_rows_per_s']:.2f} | {r['log_loss']:.4f} | "
                   f"{r['accuracy']:.4f} |")
    return out + [""]


def _startup(R):
    if "startup" not in R:
        return []
    out = ["## Start-up (numba cache)\n",
           "`python -m streamfm train DATA --method llfm-jo --max-rows 1` on a 2,000-row Parquet file, with a "
           "fresh `NUMBA_CACHE_DIR`: the first run compiles the kernels and caches them, later runs load them. "
           "Seconds from spawning the process to its first epoch beginning (interpreter start, imports, scan "
           "pass, k-means) and to the epoch's first rows being trained (the training kernels loaded from the "
           "cache, or compiled in the cold run, and run). `tools/throughput/first_chunk.py` runs the same "
           "training through `streamfm.run.train`, the function the command calls, with a callback "
           "(`streamfm/training/callbacks.py`) that notes both moments. \"Whole process\" adds the checkpoint "
           "the run stops with and the interpreter's exit.\n",
           "| run | s to the first epoch's start | s to the first trained rows | whole process, wall s "
           "| CPU s (user + sys) |",
           "|---|---:|---:|---:|---:|"]
    for k, v in R["startup"].items():
        begins = v.get("training_begins", v.get("first_chunk_in"))
        out.append(f"| {k} | {begins:.2f} | {v['first_chunk']:.2f} | {v['wall']:.2f} | {v['cpu']:.2f} |")
    first, whole = _warm_startup(R["startup"])
    return out + [f"| median of the warm runs | | {first:.2f} | {whole:.2f} | |", ""]


def write_doc(R, args, cmdline):
    """The text of docs/performance.md for the results ``R`` and the command(s) that measured them."""
    from tools.throughput.reading import reading

    L = _head(R, cmdline) + _peers(R)
    with open(NOTES) as fh:
        L.append(fh.read())
    for part in (_targets, _earlier_commits, _sparse_llfm, _breakdowns, _anchors, _scaling, _threads, _startup):
        L += part(R)
    L += [reading(R), "## Command\n", "```", cmdline, "```",
          "Peers come from the `bench` extra (`pip install \".[bench]\"`), never the runtime dependencies.\n"]
    # the runs used a snapshot of the repository under bench-data/snap: show paths from the repository root
    return re.sub(r"/\S*?/bench-data/(snap/bench-data/)?", "bench-data/", "\n".join(L) + "\n")
