"""How many anchors an LLFM gets when none is given (``anchors="auto"``, the default).

The anchors are the model's capacity: m local FMs, each trained on the rows
near its anchor. The rule (measured in docs/dense.md):

    m = clip(min(sqrt(n), n / (ROWS_PER_FEATURE * p)), MIN_ANCHORS, MAX_ANCHORS)

for n training rows of p features (the scan pass's counts). ``sqrt(n)``
lets the anchors, and so the number of local models, grow with the data
while each anchor's share of the rows grows too (n / m = sqrt(n)); ``n /
(8 p)`` keeps that share at 8 rows or more per feature an anchor's FM
weighs, so wide sparse data (rows per feature in the tens) stays at the
floor. The floor is the paper's m = 50; the ceiling bounds the time of the
coding's search and of k-means on the sample. Then m is at most the rows
k-means places the anchors among (the scan's sample), and is lowered until
the exact parameter store fits the memory budget (never below the floor:
past that ``choose_store`` picks the hashed store, as for a given m).
"""
from __future__ import annotations

import math
from collections.abc import Callable

#: the paper's m: the fewest anchors the rule gives (unless the data has fewer rows)
MIN_ANCHORS = 50
#: the most anchors the rule gives
MAX_ANCHORS = 512
#: rows per feature each anchor's FM should see on average
ROWS_PER_FEATURE = 8
AUTO = "auto"


def auto_anchors(n_rows: int, n_features: int, *, sample_rows: int | None = None,
                 fits: Callable[[int], bool] | None = None) -> int:
    """The anchors for ``n_rows`` training rows of ``n_features`` features (see the module notes).

    ``sample_rows``: the rows k-means chooses among (m is at most that, and at least 1);
    ``fits(m)``: whether a model of m anchors fits the memory budget in the exact store.
    """
    n, p = max(int(n_rows), 1), max(int(n_features), 1)
    m = int(round(min(math.sqrt(n), n / (ROWS_PER_FEATURE * p))))
    m = min(max(m, MIN_ANCHORS), MAX_ANCHORS)
    if fits is not None:
        while m > MIN_ANCHORS and not fits(m):
            m = max(MIN_ANCHORS, (m * 3) // 4)
    if sample_rows is not None:
        m = min(m, max(int(sample_rows), 1))
    return m
