"""AUC in constant memory: the binned AUC is within its stated error of the exact one."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from streamfm.inference.metrics import AUC_BINS, BinnedAUC, StreamingMetrics


@pytest.mark.parametrize("seed, shift, scale", [(0, 1.0, 2.0), (1, 0.1, 0.5), (2, 3.0, 8.0), (3, 0.0, 30.0)])
def test_binned_auc_is_within_its_bound_of_the_exact_auc(seed, shift, scale):
    """Random margins, chunk by chunk; the last case puts a fifth of them beyond +-40 (tied in the end
    bins): the bound still holds, and is large, as it should be."""
    rng = np.random.default_rng(seed)
    n = 20_000
    y = rng.random(n) < 0.3
    margins = scale * rng.normal(size=n) + shift * y
    auc = BinnedAUC()
    for part in np.array_split(np.arange(n), 7):  # chunk by chunk
        auc.add(y[part], margins[part])
    exact = roc_auc_score(y, margins)
    assert abs(auc.auc() - exact) <= auc.error_bound() + 1e-12
    if scale < 10:
        assert auc.error_bound() < 1e-4  # margins that spread: few pairs share a bin
    else:
        assert auc.error_bound() > 0.005
    assert auc.pos.nbytes + auc.neg.nbytes == 2 * 8 * AUC_BINS  # the same memory whatever the rows


def test_ties_and_one_class():
    auc = BinnedAUC()
    auc.add(np.array([1, 0, 1, 0]), np.zeros(4))
    assert auc.auc() == 0.5 == roc_auc_score([1, 0, 1, 0], np.zeros(4)) and auc.error_bound() == 0.5
    one = BinnedAUC()
    one.add(np.ones(5, bool), np.arange(5.0))
    assert one.auc() is None and one.error_bound() == 0.0


def test_streaming_metrics_report_the_binned_auc_of_probabilities():
    rng = np.random.default_rng(4)
    f = rng.normal(size=5000) * 3
    y = (rng.random(5000) < 1 / (1 + np.exp(-f))).astype(int)
    p1 = 1 / (1 + np.exp(-f))
    acc = StreamingMetrics("binary")
    acc.add(y, np.column_stack([1 - p1, p1]))
    assert acc.result()["auc"] == pytest.approx(roc_auc_score(y, p1), abs=acc.auc.error_bound() + 1e-12)
    assert "auc" not in StreamingMetrics("multiclass").result()
