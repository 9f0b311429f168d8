"""ROC, AUC, DeLong and the ROC bootstrap against scikit-learn and hand-worked examples."""

from fractions import Fraction

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from ftjax.metrics import (
    delong_interval,
    delong_test,
    delong_variance,
    roc_auc,
    roc_bootstrap,
    roc_curve,
    sensitivity_at_fpr,
)
from ftjax.metrics.roc import _curves, _roc_events


def _tied_data(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    # Rounding to one decimal creates many ties, within and across classes.
    scores = np.round(rng.normal(size=n) + 0.8 * labels, 1)
    return labels, scores


@pytest.mark.parametrize("seed", range(5))
def test_roc_curve_and_auc_match_sklearn_with_ties(seed):
    labels, scores = _tied_data(seed)
    curve = roc_curve(labels, scores)
    fpr, tpr, thresholds = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, fpr)
    np.testing.assert_allclose(curve.tpr, tpr)
    np.testing.assert_array_equal(curve.thresholds, thresholds)
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert (curve.n_pos, curve.n_neg) == (labels.sum(), (1 - labels).sum())


def test_weighted_engine_matches_sklearn_sample_weight():
    # The bootstrap computes each resample as integer case weights; check them against sklearn.
    labels, scores = _tied_data(7, n=300)
    weights = np.random.default_rng(1).integers(0, 4, size=(3, labels.size)).astype(float)
    x, y = _curves(_roc_events(labels.astype(bool), scores), weights)
    for row in range(3):
        expected = roc_auc_score(labels, scores, sample_weight=weights[row])
        assert np.trapezoid(y[row], x[row]) == pytest.approx(expected, abs=1e-12)


def test_sensitivity_at_fpr_hand_worked():
    # Negatives 0.9, 0.5, 0.3, 0.1 and positives 0.95, 0.5, 0.4, 0.2:
    # thresholds 0.95 -> (0, .25); 0.9 -> (.25, .25); 0.5 -> (.5, .5); 0.4 -> (.5, .75);
    # 0.3 -> (.75, .75); 0.2 -> (.75, 1); 0.1 -> (1, 1).
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.9, 0.5, 0.3, 0.1, 0.95, 0.5, 0.4, 0.2]
    curve = roc_curve(labels, scores)
    np.testing.assert_allclose(curve.fpr, [0, 0, 0.25, 0.5, 0.5, 0.75, 0.75, 1])
    np.testing.assert_allclose(curve.tpr, [0, 0.25, 0.25, 0.5, 0.75, 0.75, 1, 1])
    # 0.1 lies on the flat part; 0.375 between (.25,.25) and (.5,.5); 0.5 and 0.75 are tops of
    # vertical steps; 0.6 lies on the flat part after the step at 0.5.
    got = sensitivity_at_fpr(curve, [0.0, 0.1, 0.375, 0.5, 0.6, 0.75, 1.0])
    np.testing.assert_allclose(got, [0.25, 0.25, 0.375, 0.75, 0.75, 1.0, 1.0])


def test_sensitivity_at_fpr_agrees_with_np_interp():
    labels, scores = _tied_data(3)
    curve = roc_curve(labels, scores)
    query = np.linspace(0, 1, 37)
    np.testing.assert_allclose(
        sensitivity_at_fpr(curve, query), np.interp(query, curve.fpr, curve.tpr)
    )


# A small example worked by hand. Positives X = (0.9, 0.8, 0.4), negatives
# Y = (0.7, 0.4, 0.2, 0.1) for model a; X = (0.6, 0.3, 0.9), Y = (0.5, 0.2, 0.8, 0.1) for model b.
# psi[i][j] = 1 if X_i > Y_j, 1/2 if equal, 0 otherwise.
PSI_A = [
    [1, 1, 1, 1],
    [1, 1, 1, 1],
    [0, Fraction(1, 2), 1, 1],
]
PSI_B = [
    [1, 1, 0, 1],
    [0, 1, 0, 1],
    [1, 1, 1, 1],
]
LABELS = [1, 1, 1, 0, 0, 0, 0]
SCORES_A = [0.9, 0.8, 0.4, 0.7, 0.4, 0.2, 0.1]
SCORES_B = [0.6, 0.3, 0.9, 0.5, 0.2, 0.8, 0.1]


def _placements(psi):
    m, n = len(psi), len(psi[0])
    v10 = [sum(row, Fraction(0)) / n for row in psi]
    v01 = [sum((psi[i][j] for i in range(m)), Fraction(0)) / m for j in range(n)]
    return v10, v01


def _cov(u, v):
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    return sum((a - mu) * (b - mv) for a, b in zip(u, v, strict=True)) / (len(u) - 1)


def test_delong_variance_hand_worked():
    v10, v01 = _placements(PSI_A)
    assert v10 == [1, 1, Fraction(5, 8)]
    assert v01 == [Fraction(2, 3), Fraction(5, 6), 1, 1]
    var = _cov(v10, v10) / 3 + _cov(v01, v01) / 4
    assert var == Fraction(19, 864)
    auc, got = delong_variance(LABELS, SCORES_A)
    assert auc == pytest.approx(7 / 8)
    assert got == pytest.approx(19 / 864, rel=1e-12)


def test_delong_test_hand_worked():
    a10, a01 = _placements(PSI_A)
    b10, b01 = _placements(PSI_B)
    var = (_cov(a10, a10) + _cov(b10, b10) - 2 * _cov(a10, b10)) / 3 + (
        _cov(a01, a01) + _cov(b01, b01) - 2 * _cov(a01, b01)
    ) / 4
    assert var == Fraction(11, 108)
    z = (7 / 8 - 3 / 4) / np.sqrt(11 / 108)
    result = delong_test(LABELS, SCORES_A, SCORES_B)
    assert (result.auc_a, result.auc_b) == (pytest.approx(7 / 8), pytest.approx(3 / 4))
    assert result.se == pytest.approx(np.sqrt(11 / 108), rel=1e-12)
    assert result.z == pytest.approx(z, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(z), rel=1e-12)
    same = delong_test(LABELS, SCORES_A, SCORES_A)
    assert (same.difference, same.p_value) == (0.0, 1.0)


def test_delong_interval_shrinks_with_more_cases():
    widths = []
    for n in (50, 200, 800, 3200):
        labels, scores = _tied_data(11, n)
        ci = delong_interval(labels, scores)
        assert ci.low < ci.auc < ci.high
        widths.append(ci.high - ci.low)
    assert all(a > b for a, b in zip(widths, widths[1:], strict=False))
    assert widths[0] / widths[-1] == pytest.approx(8.0, rel=0.35)  # ~ sqrt(3200 / 50)


def test_bootstrap_agrees_with_delong_and_is_reproducible():
    labels, scores = _tied_data(5, 600)
    boot = roc_bootstrap(labels, scores, n_boot=1000, seed=3)
    ci = delong_interval(labels, scores)
    assert boot.summary == pytest.approx(roc_auc_score(labels, scores))
    assert boot.summary_high - boot.summary_low == pytest.approx(ci.high - ci.low, rel=0.2)
    assert boot.summary_low < boot.summary < boot.summary_high
    assert np.all((boot.low <= boot.estimate) & (boot.estimate <= boot.high))
    curve = roc_curve(labels, scores)
    np.testing.assert_allclose(boot.estimate, sensitivity_at_fpr(curve, [0.1, 0.15, 0.2]))
    inside = (boot.band_low <= sensitivity_at_fpr(curve, boot.grid)) & (
        sensitivity_at_fpr(curve, boot.grid) <= boot.band_high
    )
    assert inside.all()
    again = roc_bootstrap(labels, scores, n_boot=1000, seed=3)
    np.testing.assert_array_equal(boot.samples, again.samples)
    np.testing.assert_array_equal(boot.band_low, again.band_low)
    other = roc_bootstrap(labels, scores, n_boot=1000, seed=4)
    assert not np.array_equal(boot.samples, other.samples)


def test_bootstrap_by_cluster_widens_for_correlated_clusters():
    # 20 videos x 30 frames; how well a video's frames separate depends on the video, so the
    # AUC depends on which videos are drawn: resampling frames understates that uncertainty.
    rng = np.random.default_rng(0)
    video = np.repeat(np.arange(20), 30)
    labels = rng.integers(0, 2, video.size)
    separation = rng.uniform(-1, 4, 20)
    scores = labels * separation[video] + 0.5 * rng.normal(size=video.size)
    by_frame = roc_bootstrap(labels, scores, n_boot=500, seed=0)
    by_video = roc_bootstrap(labels, scores, clusters=video, n_boot=500, seed=0)
    frame_width = by_frame.summary_high - by_frame.summary_low
    video_width = by_video.summary_high - by_video.summary_low
    assert video_width > 2 * frame_width


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([], [], "labels is empty"),
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1, 1], [0.1, 0.2], "length mismatch"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
    ],
)
def test_bad_input(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        roc_curve(labels, scores)


def test_bad_options():
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    with pytest.raises(ValueError, match="fprs"):
        sensitivity_at_fpr(roc_curve(labels, scores), [1.5])
    with pytest.raises(ValueError, match="at least 2 positives"):
        delong_variance([0, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="length mismatch"):
        delong_test(labels, scores, [0.1, 0.2])
    with pytest.raises(ValueError, match="clusters"):
        roc_bootstrap(labels, scores, clusters=[0, 1])
    with pytest.raises(ValueError, match="level"):
        roc_bootstrap(labels, scores, level=95)
    with pytest.raises(ValueError, match="n_boot"):
        roc_bootstrap(labels, scores, n_boot=0)
