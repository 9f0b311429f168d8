"""Tobogganing, the lumen mask and PE candidate generation."""

import itertools

import numpy as np
import pytest

from ftjax.apps.pe.synthetic import synthetic_scan
from ftjax.apps.pe.toboggan import (
    Candidates,
    TobogganConfig,
    candidate_labels,
    evaluate_generator,
    find_candidates,
    lumen_mask,
    toboggan,
)


def _reference_toboggan(values, domain):
    """Slow, literal tobogganing: follow the darkest in-domain 26-neighbour (ties: lower raster
    index) voxel by voxel until a minimum; group voxels by their minimum."""
    shape = values.shape
    flat_index = np.arange(values.size).reshape(shape)
    offsets = [o for o in itertools.product((-1, 0, 1), repeat=3) if o != (0, 0, 0)]

    def step(p):
        best, key = p, (values[p], flat_index[p])
        for o in offsets:
            q = tuple(a + b for a, b in zip(p, o, strict=True))
            if all(0 <= c < n for c, n in zip(q, shape, strict=True)) and domain[q]:
                if (values[q], flat_index[q]) < key:
                    best, key = q, (values[q], flat_index[q])
        return best

    minima = {}
    for p in zip(*np.nonzero(domain), strict=True):
        q = p
        while (nxt := step(q)) != q:
            q = nxt
        minima[p] = q
    return minima


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_toboggan_matches_literal_reference(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, size=(5, 6, 7)).astype(np.float32)  # many ties on purpose
    domain = rng.uniform(size=values.shape) < 0.7
    labels = toboggan(values, domain)
    ref = _reference_toboggan(values, domain)
    assert np.all(labels[~domain] == 0) and np.all(labels[domain] > 0)
    # Same partition: two voxels share a label iff they reach the same minimum.
    groups = {}
    for p, m in ref.items():
        groups.setdefault(m, set()).add(labels[p])
    assert all(len(g) == 1 for g in groups.values())
    assert len({next(iter(g)) for g in groups.values()}) == len(groups) == labels.max()


def test_toboggan_two_basins_and_empty_domain():
    z = np.arange(9, dtype=np.float32)
    values = np.broadcast_to(-np.cos(2 * np.pi * z / 8)[:, None, None], (9, 3, 3)).copy()
    values[4] += 0.1 * np.arange(9).reshape(3, 3)  # break the plateau on the ridge
    values[0, 1, 1] -= 1
    values[8, 1, 1] -= 1
    labels = toboggan(values, np.ones(values.shape, bool))
    assert labels.max() == 2
    assert len(np.unique(labels[:4])) == 1 and len(np.unique(labels[5:])) == 1
    assert labels[0, 0, 0] != labels[8, 0, 0]
    assert toboggan(values, np.zeros(values.shape, bool)).max() == 0


def test_candidates_from_labels_statistics():
    rng = np.random.default_rng(3)
    hu = rng.normal(size=(4, 5, 6)).astype(np.float32)
    labels = np.zeros(hu.shape, np.int32)
    labels[0, :2, :2] = 1
    labels[3, 4, 5] = 2
    labels[1:3, 2, 3] = 3
    c = Candidates.from_labels(labels, hu)
    assert len(c) == 3 and c.offsets.tolist() == [0, 4, 5, 7]
    for i in range(3):
        vox = np.argwhere(labels == i + 1)
        assert sorted(map(tuple, c.voxels(i))) == sorted(map(tuple, vox))
        np.testing.assert_allclose(c.centres[i], vox.mean(0))
        np.testing.assert_allclose(c.mean_hu[i], hu[labels == i + 1].mean(), rtol=1e-6)
        assert c.min_hu[i] == hu[labels == i + 1].min() and c.sizes[i] == len(vox)
    with pytest.raises(ValueError, match="without gaps"):
        Candidates.from_labels(np.where(labels == 2, 5, labels), hu)


def _vessel_phantom(spacing=(1.5, 1.0, 1.0), shape=(40, 40, 40), defect=None):
    """A straight contrast-filled tube (radius 5 mm, 350 HU) along x through lung (-850 HU),
    with an optional filling defect (50 HU): 'central' ball or 'occlusive' slab."""
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)],
                             indexing="ij")
    c = np.array(shape) * np.array(spacing) / 2
    r = np.hypot(zz - c[0], yy - c[1])
    hu = np.where(r <= 5.0, 350.0, -850.0)
    clot = np.zeros(shape, bool)
    if defect == "central":
        clot = (r <= 2.5) & (np.abs(xx - c[2]) <= 4.0)
    elif defect == "occlusive":
        clot = (r <= 5.0) & (np.abs(xx - c[2]) <= 4.0)
    hu[clot] = 50.0
    return hu.astype(np.float32), spacing, clot


@pytest.mark.parametrize("defect", ["central", "occlusive"])
def test_lumen_mask_encloses_filling_defects_and_candidate_hits_them(defect):
    hu, spacing, clot = _vessel_phantom(defect=defect)
    lumen = lumen_mask(hu, spacing)
    if defect == "central":  # enclosed by contrast: hole filling takes all of it
        assert lumen[clot].mean() > 0.9
    else:  # the closing bridges the gap with a waist around the axis (not the whole lumen)
        assert lumen[20, 20][clot[20, 20]].all() and 0.05 < lumen[clot].mean() < 0.9
    assert not lumen[hu < -800].any()  # lung stays outside
    cands = find_candidates(hu, spacing, lumen=lumen)
    assert len(cands) >= 1
    hits = candidate_labels(cands, clot.astype(np.int32))
    assert hits.sum() >= 1
    assert np.all(cands.min_hu >= TobogganConfig().defect_hu[0] - 1)


def test_clean_vessel_and_empty_scan_give_no_candidates():
    hu, spacing, _ = _vessel_phantom()
    assert len(find_candidates(hu, spacing)) == 0
    empty = find_candidates(np.full((10, 12, 14), -850.0, np.float32), (1.0, 1.0, 1.0))
    assert len(empty) == 0 and empty.coords.shape == (0, 3) and empty.centres.shape == (0, 3)
    assert empty.offsets.tolist() == [0]
    assert candidate_labels(empty, np.zeros((10, 12, 14))).size == 0


def test_thick_bright_structures_are_not_lumen():
    shape, spacing = (40, 40, 40), (1.5, 1.5, 1.5)
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)],
                             indexing="ij")
    ball = (zz - 30) ** 2 + (yy - 30) ** 2 + (xx - 30) ** 2 <= 20.0**2  # bone-like, radius 20 mm
    hu = np.where(ball, 400.0, -850.0).astype(np.float32)
    assert not lumen_mask(hu, spacing).any()


def test_generator_on_synthetic_scans():
    """Most SYNTHETIC clots are hit, with tens (not hundreds) of candidates per scan."""
    scans = [synthetic_scan(seed) for seed in range(6)]
    stats = evaluate_generator(scans)
    assert stats.n_scans == 6 and stats.n_clots == sum(s.n_clots for s in scans) > 5
    assert stats.sensitivity >= 0.8
    assert 10 <= stats.candidates_per_scan <= 100
    assert stats.n_true_candidates >= stats.n_clots_hit
