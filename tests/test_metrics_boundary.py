"""Boundary errors on analytic traces."""

import numpy as np
import pytest

from ftjax.metrics import BoundaryTable, boundary_errors

COLUMNS = 200
PIXEL_MM = 0.06  # a typical CUBS calibration: 60 um per pixel


def _reference() -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(COLUMNS, dtype=float)
    li = 100.0 + 10.0 * np.sin(x / 30.0)  # a wavy lumen-intima interface
    ma = li + 12.0 + 0.01 * x  # media-adventitia 12..14 pixels deeper
    return li, ma


def test_constant_offsets_give_offset_times_pixel_size():
    li, ma = _reference()
    err = boundary_errors(li + 1.5, li, ma - 2.0, ma, PIXEL_MM)
    assert err.li_um == pytest.approx(1.5 * 60.0)
    assert err.ma_um == pytest.approx(2.0 * 60.0)
    # The system IMT is 3.5 pixels thinner than the reference.
    assert err.imt_signed_um == pytest.approx(-3.5 * 60.0)
    assert err.imt_abs_um == pytest.approx(3.5 * 60.0)
    assert err.imt_ref_um == pytest.approx(np.mean(12.0 + 0.01 * np.arange(COLUMNS)) * 60.0)
    assert (err.li_columns, err.ma_columns, err.imt_columns) == (COLUMNS, COLUMNS, COLUMNS)


def test_alternating_offsets_count_as_absolute_distance():
    li, ma = _reference()
    sign = np.where(np.arange(COLUMNS) % 2 == 0, 1.0, -1.0)
    err = boundary_errors(li + 2.0 * sign, li, ma, ma, PIXEL_MM)
    assert err.li_um == pytest.approx(2.0 * 60.0)
    assert err.ma_um == 0.0
    assert err.imt_signed_um == pytest.approx(0.0, abs=1e-9)  # +2 and -2 cancel on average


def test_partial_overlap_uses_shared_columns_only():
    li, ma = _reference()
    li_pred = li + 3.0
    li_pred[:40] = li[:40] + 50.0  # far off, but the reference does not cover these columns
    li_pred[150:] = np.nan  # the system stops early
    li_ref = li.copy()
    li_ref[:40] = np.nan
    ma_pred = ma + 1.0
    ma_pred[:100] = np.nan
    err = boundary_errors(li_pred, li_ref, ma_pred, ma, PIXEL_MM)
    assert err.li_columns == 110  # columns 40..149
    assert err.li_um == pytest.approx(3.0 * 60.0)
    assert err.ma_columns == 100
    assert err.ma_um == pytest.approx(60.0)
    assert err.imt_columns == 50  # columns 100..149 have all four traces
    assert err.imt_signed_um == pytest.approx((1.0 - 3.0) * 60.0)


def test_table_summary_mean_and_sd():
    li, ma = _reference()
    errors = [boundary_errors(li + d, li, ma, ma + d, PIXEL_MM) for d in (1.0, 2.0, 3.0)]
    table = BoundaryTable.from_images(errors)
    np.testing.assert_allclose(table.li_um, [60.0, 120.0, 180.0])
    np.testing.assert_allclose(table.imt_signed_um, [-120.0, -240.0, -360.0])
    summary = table.summary()
    assert summary["li_um"] == pytest.approx((120.0, 60.0))  # SD of 60, 120, 180 (n - 1)
    assert summary["ma_um"] == pytest.approx((120.0, 60.0))
    assert summary["imt_abs_um"] == pytest.approx((240.0, 120.0))


def test_bad_input():
    li, ma = _reference()
    with pytest.raises(ValueError, match="lengths"):
        boundary_errors(li[:-1], li, ma, ma, PIXEL_MM)
    half = np.arange(COLUMNS) < 100
    with pytest.raises(ValueError, match="LI: .* share no column"):
        boundary_errors(np.where(half, li, np.nan), np.where(half, np.nan, li), ma, ma, PIXEL_MM)
    with pytest.raises(ValueError, match="IMT"):
        boundary_errors(np.where(half, li, np.nan), li, np.where(half, np.nan, ma), ma, PIXEL_MM)
    with pytest.raises(ValueError, match="pixel_size_mm"):
        boundary_errors(li, li, ma, ma, 0.0)
    with pytest.raises(ValueError, match="li_pred"):
        boundary_errors(li[None], li, ma, ma, PIXEL_MM)
    with pytest.raises(ValueError, match="ma_ref"):
        boundary_errors(li, li, ma, np.full(COLUMNS, np.inf), PIXEL_MM)
    with pytest.raises(ValueError, match="li_pred must be non-empty"):
        boundary_errors([], [], [], [], PIXEL_MM)
    with pytest.raises(ValueError, match="no images"):
        BoundaryTable.from_images([])
