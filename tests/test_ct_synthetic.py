"""CTScan validation and the SYNTHETIC CTPA generator."""

import numpy as np
import pytest

from ftjax.apps.pe import synthetic as synthetic_ct
from ftjax.apps.pe.ct import CTDataError, CTScan
from ftjax.apps.pe.synthetic import synthetic_scan, synthetic_scan_with_truth


def _scan(**overrides):
    args = dict(case_id="c1", hu=np.zeros((4, 5, 6)), spacing=(2.0, 0.7, 0.7),
                clots=np.zeros((4, 5, 6), np.int64), source="test")
    args.update(overrides)
    return CTScan(**args)


def test_ctscan_normalises_types():
    clots = np.zeros((4, 5, 6), np.int64)
    clots[1, 2, 3] = 2
    scan = _scan(hu=np.arange(120, dtype=np.int16).reshape(4, 5, 6), clots=clots,
                 spacing=np.array([2, 0.7, 0.7]))
    assert scan.hu.dtype == np.float32 and scan.clots.dtype == np.int32
    assert scan.spacing == (2.0, 0.7, 0.7) and isinstance(scan.spacing[0], float)
    assert scan.shape == (4, 5, 6) and scan.n_clots == 1
    assert _scan().n_clots == 0  # an all-zero mask is a valid scan without clots


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(hu=np.zeros((5, 6))), "3-D"),
        (dict(hu=np.full((4, 5, 6), np.nan)), "NaN"),
        (dict(spacing=(1.0, 1.0)), "spacing"),
        (dict(spacing=(1.0, 0.0, 1.0)), "spacing"),
        (dict(spacing=(1.0, np.inf, 1.0)), "spacing"),
        (dict(clots=np.zeros((4, 5, 7), np.int32)), "does not match"),
        (dict(clots=np.full((4, 5, 6), -1)), ">= 0"),
        (dict(clots=np.zeros((4, 5, 6), np.float32)), "integers"),
    ],
)
def test_ctscan_rejects_bad_input(overrides, message):
    with pytest.raises(CTDataError, match=message):
        _scan(**overrides)


def test_tube_rendering_has_the_analytic_volume_and_partial_volume():
    """Anti-aliased coverage of an oblique tube integrates to its analytic volume."""
    spacing = (1.5, 0.8, 0.9)
    grid = synthetic_ct._Grid((40, 60, 60), spacing)
    p0, p1 = np.array([12.0, 10.0, 12.0]), np.array([45.0, 35.0, 40.0])
    for r0, r1 in ((4.0, 4.0), (5.0, 3.0)):
        tube = synthetic_ct._Tube(p0, p1, r0, r1, 0)
        box, cov = synthetic_ct._tube_fraction(grid, tube)
        length = np.linalg.norm(p1 - p0)
        frustum = np.pi * length * (r0**2 + r0 * r1 + r1**2) / 3  # the cone part
        caps = 2 / 3 * np.pi * (r0**3 + r1**3)  # hemispherical end caps (capsule ends)
        # At the ends, t is clipped so the caps have the end radius: approximately hemispheres.
        assert cov.sum() * np.prod(spacing) == pytest.approx(frustum + caps, rel=0.03)
        assert ((cov > 0.05) & (cov < 0.95)).sum() > 0.2 * (cov >= 0.95).sum()


@pytest.fixture(scope="module")
def scan_and_truth():
    return synthetic_scan_with_truth(3, noise_hu=15.0)


def test_synthetic_is_labelled_deterministic_and_shaped(scan_and_truth):
    scan, truth = scan_and_truth
    again, _ = synthetic_scan_with_truth(3, noise_hu=15.0)
    assert scan.source == "synthetic" and "synthetic" in scan.case_id
    assert scan.shape == (64, 128, 128) and scan.spacing == (3.0, 2.0, 2.0)
    assert np.array_equal(scan.hu, again.hu) and np.array_equal(scan.clots, again.clots)
    assert not np.array_equal(scan.hu, synthetic_scan(4, noise_hu=15.0).hu)
    assert "SYNTHETIC" in synthetic_ct.__doc__ and "SYNTHETIC" in synthetic_scan.__doc__
    assert scan.hu.dtype == np.float32 and np.isfinite(scan.hu).all()


def test_synthetic_intensities(scan_and_truth):
    scan, truth = scan_and_truth
    hu = scan.hu
    corner = hu[:, :6, :6]  # outside the body: air plus noise
    assert np.median(corner) == pytest.approx(-1000, abs=5)
    assert corner.std() == pytest.approx(15.0, rel=0.25)
    assert 200 <= truth.artery_hu <= 450 and 80 <= truth.vein_hu <= 160
    no_clot = scan.clots == 0
    artery_core = (truth.artery > 0.999) & no_clot
    assert np.median(hu[artery_core]) == pytest.approx(truth.artery_hu, rel=0.06)
    vein_core = (truth.vein > 0.999) & (truth.artery == 0)
    assert np.median(hu[vein_core]) == pytest.approx(truth.vein_hu, abs=10)
    # Walls: partially covered voxels lie between lung and contrast.
    wall = (truth.artery > 0.3) & (truth.artery < 0.7) & no_clot & (truth.vein == 0)
    assert -700 < np.median(hu[wall]) < truth.artery_hu - 100
    # Lungs: the darkest large tissue class, around -850 HU.
    lung = hu[(hu > -950) & (hu < -600)]
    assert np.median(lung) == pytest.approx(-850, abs=40) and lung.size > 0.1 * hu.size


def test_synthetic_clots_are_filling_defects_inside_arteries():
    kinds = set()
    for seed in range(6):
        scan, truth = synthetic_scan_with_truth(seed, noise_hu=10.0)
        labels = np.unique(scan.clots[scan.clots > 0])
        assert labels.tolist() == list(range(1, len(truth.clot_kinds) + 1))
        for label, kind in zip(labels, truth.clot_kinds, strict=True):
            voxels = scan.clots == label
            assert truth.artery[voxels].min() >= 0.5  # clots lie in the artery lumen
            assert truth.clot[voxels].min() >= 0.5
            core = voxels & (truth.clot > 0.999)
            if core.sum() >= 3:  # voxels all clot: clot HU (20-90) plus noise
                assert 0 < np.median(scan.hu[core]) < 110
            kinds.add(kind)
    assert kinds == {"partial", "occlusive"}


def test_synthetic_clot_count_options_and_bigger_volume():
    none = synthetic_scan(11, n_clots=0)
    assert none.n_clots == 0 and not none.clots.any()
    big, truth = synthetic_scan_with_truth(5, shape=(40, 96, 112), spacing=(2.5, 1.4, 1.2),
                                           n_clots=4)
    assert big.shape == (40, 96, 112) and big.spacing == (2.5, 1.4, 1.2)
    assert big.n_clots == len(truth.clot_kinds) >= 1
    with pytest.raises(ValueError, match="too small"):
        synthetic_scan(0, shape=(4, 64, 64))


def test_streaks_only_change_the_upper_slab():
    with_streaks = synthetic_scan(2, streaks=True, noise_hu=0.0)
    without = synthetic_scan(2, streaks=False, noise_hu=0.0)
    diff = np.abs(with_streaks.hu - without.hu).max(axis=(1, 2))
    z_mm = np.arange(64) * 3.0
    assert np.all(diff[z_mm < 0.6 * 192 - 12] < 1e-3)
    assert diff[z_mm > 0.6 * 192].min() > 50  # streaks and dense SVC contrast in every slice
    assert with_streaks.hu.max() > 1000
