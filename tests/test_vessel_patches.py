"""Vessel axes and vessel-aligned patches, checked on analytic phantoms."""

import numpy as np
import pytest

from ftjax.apps.pe.toboggan import Candidates
from ftjax.apps.pe.vessel import perpendicular_basis, vessel_axes, vessel_patches

INSIDE_HU, OUTSIDE_HU = 400.0, -1000.0
INSIDE_U8 = (INSIDE_HU + 1000.0) / 2000.0 * 255.0  # grey level of the cylinder, default window


def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _voxel_centres_mm(shape, spacing):
    return np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing, strict=True)],
                                indexing="ij"), axis=-1)


def _rods_phantom(shape, spacing, centre_mm, axis, rods, sub=3):
    """HU volume of infinite rods (offset_mm [3], radius_mm) parallel to `axis` through
    centre_mm + offset, INSIDE_HU in OUTSIDE_HU, with voxel coverage by sub^3 supersampling."""
    pts = _voxel_centres_mm(shape, spacing)
    offsets = (np.arange(sub) - (sub - 1) / 2) / sub
    cover = np.zeros(shape)
    for oz in offsets:
        for oy in offsets:
            for ox in offsets:
                p = pts + np.array([oz, oy, ox]) * spacing
                inside = np.zeros(shape, dtype=bool)
                for offset, radius in rods:
                    d = p - (centre_mm + offset)
                    radial = d - (d @ axis)[..., None] * axis
                    inside |= np.sum(radial**2, axis=-1) <= radius**2
                cover += inside
    cover /= sub**3
    return (OUTSIDE_HU + cover * (INSIDE_HU - OUTSIDE_HU)).astype(np.float32)


def _cluster(mask):
    labels = mask.astype(np.int32)
    return Candidates.from_labels(labels, np.zeros(mask.shape, np.float32))


def _segment_mask(shape, spacing, centre_mm, axis, radius, half_length):
    d = _voxel_centres_mm(shape, spacing) - centre_mm
    s = d @ axis
    radial = d - s[..., None] * axis
    return (np.sum(radial**2, axis=-1) <= radius**2) & (np.abs(s) <= half_length)


def _angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(abs(float(np.dot(_unit(a), _unit(b)))), 0, 1)))


SHAPE, SPACING = (30, 56, 50), (1.6, 0.8, 0.9)
CENTRE_MM = np.array([24.0, 22.0, 22.5])
AXIS = _unit([1.0, 0.6, -0.8])  # oblique in (z, y, x) mm


def test_axis_from_cluster_is_pca_in_mm_not_voxels():
    mask = _segment_mask(SHAPE, SPACING, CENTRE_MM, AXIS, radius=2.5, half_length=7.0)
    cands = _cluster(mask)
    # In voxel units the same cylinder points elsewhere: a voxel-space PCA would fail this test.
    assert _angle_deg(AXIS / np.array(SPACING), AXIS) > 10
    axis = vessel_axes(cands, SPACING)[0]
    assert _angle_deg(axis, AXIS) < 3
    assert np.isclose(np.linalg.norm(axis), 1.0)


def test_round_cluster_falls_back_to_lumen_axis():
    d = _voxel_centres_mm(SHAPE, SPACING) - CENTRE_MM
    ball = np.sum(d**2, axis=-1) <= 1.6**2
    lumen = _segment_mask(SHAPE, SPACING, CENTRE_MM, AXIS, radius=3.0, half_length=100.0)
    cands = _cluster(ball)
    assert len(cands.voxels(0)) >= 6  # big enough: it is the roundness that triggers the fallback
    assert _angle_deg(vessel_axes(cands, SPACING, lumen)[0], AXIS) < 4
    no_lumen = vessel_axes(cands, SPACING)[0]  # only the (round) cluster: still a unit vector
    assert np.isclose(np.linalg.norm(no_lumen), 1.0)


@pytest.fixture(scope="module")
def marked_patches():
    """A cylinder (radius 3 mm) with a parallel marker rod 7 mm away along the frame's u."""
    u, _ = perpendicular_basis(AXIS[None])
    rods = [(np.zeros(3), 3.0), (7.0 * u[0], 1.2)]
    hu = _rods_phantom(SHAPE, SPACING, CENTRE_MM, AXIS, rods)
    centre_vox = CENTRE_MM / np.array(SPACING)
    return vessel_patches(hu, SPACING, centre_vox[None], AXIS[None])[0]


def test_patch_shape_dtype_and_cylinder_widths(marked_patches):
    assert marked_patches.shape == (54, 32, 32, 3) and marked_patches.dtype == np.uint8
    assert np.array_equal(marked_patches[..., 1], marked_patches[..., 2])
    for i_width, width in enumerate((10.0, 15.0, 20.0)):
        px = width / 32
        for k in range(18 * i_width, 18 * (i_width + 1)):
            across = marked_patches[k, :, :, 0].astype(float) / INSIDE_U8
            along = marked_patches[k, :, :, 1].astype(float) / INSIDE_U8
            yy, xx = np.mgrid[:32, :32] - 15.5
            disc = across * (np.hypot(yy, xx) * px < 4.3)  # ignore the marker rod
            assert disc.sum() == pytest.approx(np.pi * (3.0 / px) ** 2, rel=0.06)
            band = along[:, np.abs(np.arange(32) - 15.5) * px < 4.3].sum(axis=1)
            np.testing.assert_allclose(band, 2 * 3.0 / px, rtol=0.06)


def test_rotation_moves_marker_by_the_rotation_angle(marked_patches):
    px = 20.0 / 32
    yy, xx = np.mgrid[:32, :32] - 15.5
    outside_disc = np.hypot(yy, xx) * px > 4.3
    for rot in range(6):
        k = 2 * 18 + 1 * 6 + rot  # width 20 mm, shift 0
        img = marked_patches[k, :, :, 0].astype(float) * outside_disc
        w = img / img.sum()
        row, col = (w * yy).sum(), (w * xx).sum()
        assert np.hypot(row, col) * px == pytest.approx(7.0, abs=0.4)
        expected = -60.0 * rot
        diff = (np.degrees(np.arctan2(row, col)) - expected + 180) % 360 - 180
        assert abs(diff) < 4
        # The longitudinal plane contains the marker only at 0 and 180 degrees.
        along = marked_patches[k, :, :, 1].astype(float)
        marker_cols = along[:, np.abs(np.abs(np.arange(32) - 15.5) - 7.0 / px) < 1.5]
        if rot in (0, 3):  # columns run along u_k: the marker is on the +u side at 0 degrees
            assert marker_cols.mean() > 0.4 * INSIDE_U8
            assert (along[:, 16:].sum() > along[:, :16].sum()) == (rot == 0)
        else:
            assert marker_cols.mean() < 0.05 * INSIDE_U8


def test_spacing_is_honoured():
    """The same physical scene sampled on two voxel grids gives nearly the same patches."""
    grids = [((40, 40, 40), (1.0, 1.0, 1.0)), ((26, 52, 36), (1.55, 0.77, 1.1))]
    centre = np.array([20.2, 19.7, 19.9])
    u, _ = perpendicular_basis(AXIS[None])
    rods = [(np.zeros(3), 3.0), (5.0 * u[0], 1.5)]
    patches = []
    for shape, spacing in grids:
        hu = _rods_phantom(shape, spacing, centre, AXIS, rods)
        patches.append(vessel_patches(hu, spacing, (centre / np.array(spacing))[None], AXIS[None],
                                      widths_mm=(12.0, 18.0), n_rotations=3)[0].astype(float))
    assert patches[0].shape == (2 * 3 * 3, 32, 32, 3)
    assert np.abs(patches[0] - patches[1]).mean() < 0.03 * INSIDE_U8
    assert patches[0][..., 0].sum() == pytest.approx(patches[1][..., 0].sum(), rel=0.03)


def _trilinear_constant_pad(ramp, coords, shape, spacing, pad):
    """Independent reference: trilinear interpolation of a linear ramp (defined in mm) sampled at
    voxel centres, with `pad` outside the grid."""
    lo = np.floor(coords).astype(int)
    t = coords - lo
    value = np.zeros(coords.shape[:-1])
    for corner in np.ndindex(2, 2, 2):
        idx = lo + np.array(corner)
        weight = np.prod(np.where(np.array(corner) == 1, t, 1 - t), axis=-1)
        inside = np.all((idx >= 0) & (idx < np.array(shape)), axis=-1)
        value += weight * np.where(inside, ramp(idx * np.array(spacing)), pad)
    return value


def test_geometry_order_and_padding_match_documented_frame():
    """Every pixel of all 54 patches samples the documented point: checked against an independent
    trilinear reference on a linear ramp, including -1000 HU padding outside the volume."""
    shape, spacing = (12, 16, 14), (1.5, 0.7, 0.9)
    coef = np.array([20.0, -15.0, 10.0])

    def ramp(p_mm):
        return p_mm @ coef - 150.0

    hu = ramp(_voxel_centres_mm(shape, spacing)).astype(np.float32)
    axis = _unit([0.3, -1.0, 0.5])
    centre = np.array([2.0, 13.5, 6.2])  # near the volume edge, so many samples fall outside
    widths, shifts, n_rot, size = (6.0, 9.0), (-0.25, 0.0, 0.3), 4, 8
    got = vessel_patches(hu, spacing, centre[None], axis[None], widths, shifts, n_rot, size)[0]
    u, v = (b[0] for b in perpendicular_basis(axis[None]))
    assert np.allclose([u @ axis, v @ axis, u @ v], 0) and np.allclose(np.cross(axis, u), v)
    k = 0
    for width in widths:
        for shift in shifts:
            for rot in range(n_rot):
                theta = 2 * np.pi * rot / n_rot
                u_k = np.cos(theta) * u + np.sin(theta) * v
                v_k = np.cross(axis, u_k)
                g = (np.arange(size) - (size - 1) / 2) * width / size
                base = centre * np.array(spacing) + shift * width * axis
                across = base + g[:, None, None] * v_k + g[None, :, None] * u_k
                along = base + g[:, None, None] * axis + g[None, :, None] * u_k
                for channel, plane in ((0, across), (1, along)):
                    ref = _trilinear_constant_pad(ramp, plane / np.array(spacing), shape, spacing,
                                                  -1000.0)
                    ref_u8 = np.round(np.clip((ref + 1000.0) / 2000.0, 0, 1) * 255)
                    assert np.abs(got[k, :, :, channel] - ref_u8).max() <= 1, (k, channel)
                k += 1
    assert (got == 0).any() and (got > 0).any()  # both padded and in-volume pixels were tested


def test_empty_and_invalid_inputs():
    hu = np.zeros((8, 8, 8), np.float32)
    empty = vessel_patches(hu, (1, 1, 1), np.zeros((0, 3)), np.zeros((0, 3)))
    assert empty.shape == (0, 54, 32, 32, 3) and empty.dtype == np.uint8
    assert vessel_axes(_cluster(np.zeros((4, 4, 4), bool)), (1, 1, 1)).shape == (0, 3)
    with pytest.raises(ValueError, match="axes"):
        vessel_patches(hu, (1, 1, 1), np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="spacing"):
        vessel_patches(hu, (1, 0, 1), np.zeros((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="centres"):
        vessel_patches(hu, (1, 1, 1), np.zeros((2, 3)), np.ones((1, 3)))
