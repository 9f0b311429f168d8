"""CAD-PE (NRRD) and FUMPE (DICOM + .mat) readers, on small files written in the real formats."""

import nrrd
import numpy as np
import pydicom
import pytest
import scipy.io
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ftjax.apps.pe.readers import (
    PEDataError,
    list_cases,
    load_case,
    read_dicom_series,
)

# ----------------------------------------------------------------------------------- CAD-PE


def _write_cadpe(root, case_id, volume_xyz, labels_xyz, header=None, mask_header=None):
    """Write a case the way CAD-PE files are laid out: NRRD arrays in (x, y, z) file order."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "rs").mkdir(exist_ok=True)
    if header is None:
        header = {"space": "left-posterior-superior",
                  "space directions": np.diag([0.7, 0.8, 2.5]), "encoding": "gzip"}
    nrrd.write(str(root / "images" / f"{case_id}.nrrd"), volume_xyz, header)
    if labels_xyz is not None:
        nrrd.write(str(root / "rs" / f"{case_id}RefStd.nrrd"), labels_xyz,
                   mask_header if mask_header is not None else header)


def _volume_xyz(shape=(6, 5, 4), seed=0):
    return np.random.default_rng(seed).integers(-1000, 500, size=shape).astype(np.int16)


def test_cadpe_axis_order_spacing_and_labels(tmp_path):
    vol = _volume_xyz()
    labels = np.zeros(vol.shape, np.uint8)
    labels[1:3, 1, 0] = 7
    labels[4, 3, 2:4] = 3
    _write_cadpe(tmp_path, "002", vol, labels)
    _write_cadpe(tmp_path, "001", vol, np.zeros_like(labels))
    assert list_cases("cadpe", tmp_path) == ["001", "002"]
    scan = load_case("cadpe", tmp_path, "002")
    assert scan.source == "cadpe" and scan.case_id == "002"
    assert scan.hu.shape == (4, 5, 6)  # (z, y, x)
    np.testing.assert_array_equal(scan.hu, vol.transpose(2, 1, 0).astype(np.float32))
    assert scan.spacing == pytest.approx((2.5, 0.8, 0.7))
    # Labels 3 and 7 become 1 and 2, in the same places.
    expected = np.zeros((4, 5, 6), np.int32)
    expected[0, 1, 1:3] = 2
    expected[2:4, 3, 4] = 1
    np.testing.assert_array_equal(scan.clots, expected)
    empty = load_case("cadpe", tmp_path, "001")  # a scan without clots is valid
    assert empty.n_clots == 0


def test_cadpe_spacing_from_spacings_field_and_oblique_directions(tmp_path):
    vol = _volume_xyz()
    _write_cadpe(tmp_path / "a", "1", vol, np.zeros_like(vol),
                 header={"spacings": [0.6, 0.9, 1.25], "encoding": "raw"})
    assert load_case("cadpe", tmp_path / "a", "1").spacing == pytest.approx((1.25, 0.9, 0.6))
    c, s = np.cos(0.3), np.sin(0.3)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    dirs = rot @ np.diag([0.7, 0.8, 2.0])
    _write_cadpe(tmp_path / "b", "1", vol, np.zeros_like(vol),
                 header={"space": "left-posterior-superior", "space directions": dirs.T})
    assert load_case("cadpe", tmp_path / "b", "1").spacing == pytest.approx((2.0, 0.8, 0.7))


def test_cadpe_bzip2_and_raw_data_at_the_end_of_the_file(tmp_path):
    """Layouts the hardened reader still accepts: bzip2 data, and raw data placed by
    `byte skip: -1` after a gap."""
    vol = _volume_xyz()
    _write_cadpe(tmp_path / "bz", "1", vol, np.zeros_like(vol),
                 header={"spacings": [0.6, 0.9, 1.25], "encoding": "bzip2"})
    np.testing.assert_array_equal(load_case("cadpe", tmp_path / "bz", "1").hu,
                                  vol.transpose(2, 1, 0))
    _write_cadpe(tmp_path / "end", "1", vol, None,
                 header={"spacings": [0.6, 0.9, 1.25], "encoding": "raw"})
    path = tmp_path / "end" / "images" / "1.nrrd"
    head, _, body = path.read_bytes().partition(b"\n\n")
    path.write_bytes(head + b"\nbyte skip: -1\n\n" + b"gap" + body)
    np.testing.assert_array_equal(load_case("cadpe", tmp_path / "end", "1", masks=False).hu,
                                  vol.transpose(2, 1, 0))


def test_cadpe_bad_input(tmp_path):
    vol = _volume_xyz()
    _write_cadpe(tmp_path / "nospacing", "1", vol, np.zeros_like(vol), header={"encoding": "raw"})
    with pytest.raises(PEDataError, match=r"1\.nrrd.*spacing"):
        load_case("cadpe", tmp_path / "nospacing", "1")

    _write_cadpe(tmp_path / "nomask", "1", vol, None)
    with pytest.raises(FileNotFoundError, match="1RefStd.nrrd"):
        load_case("cadpe", tmp_path / "nomask", "1")

    _write_cadpe(tmp_path / "shape", "1", vol, np.zeros((6, 5, 3), np.uint8))
    with pytest.raises(PEDataError, match=r"1RefStd\.nrrd.*does not match"):
        load_case("cadpe", tmp_path / "shape", "1")

    _write_cadpe(tmp_path / "trunc", "1", _volume_xyz((30, 30, 20)), np.zeros((30, 30, 20)))
    path = tmp_path / "trunc" / "images" / "1.nrrd"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(PEDataError, match=r"1\.nrrd.*corrupt or truncated"):
        load_case("cadpe", tmp_path / "trunc", "1")
    path.write_bytes(b"not an nrrd\n")
    with pytest.raises(PEDataError, match=r"1\.nrrd"):
        load_case("cadpe", tmp_path / "trunc", "1")

    with pytest.raises(FileNotFoundError, match="images"):
        list_cases("cadpe", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"9\.nrrd"):
        load_case("cadpe", tmp_path / "shape", "9")
    with pytest.raises(ValueError, match="unknown PE dataset"):
        list_cases("lidc", tmp_path)


# ------------------------------------------------------------------------------------ FUMPE

SERIES_UID = generate_uid(entropy_srcs=["ftjax test series"])  # one series unless told
ROW_COS = np.array([1.0, 0.0, 0.0])
COL_COS = np.array([0.0, np.cos(0.2), -np.sin(0.2)])  # a tilted gantry: oblique slices
NORMAL = np.cross(ROW_COS, COL_COS)


def _write_slice(path, raw, position, instance, pixel_spacing=(0.7, 0.6), drop=(),
                 series_uid=SERIES_UID):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID = "CT", series_uid
    ds.Rows, ds.Columns = raw.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [*ROW_COS.tolist(), *COL_COS.tolist()]
    ds.PixelSpacing = list(pixel_spacing)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1024
    ds.InstanceNumber = instance
    ds.PixelData = raw.astype(np.uint16).tobytes()
    for tag in drop:
        delattr(ds, tag)
    ds.save_as(path, enforce_file_format=True)


def _write_fumpe(root, case_id, n=5, step=1.25, shape=(6, 7), mask=None, positions=None):
    """A series whose file names and instance numbers run against the slice positions (as when
    a scanner numbers slices head to feet), plus an optional (y, x, z) mask in instance order."""
    folder = root / "CT_scans" / case_id
    folder.mkdir(parents=True)
    series_uid = generate_uid()
    rng = np.random.default_rng(1)
    raws = rng.integers(0, 2000, size=(n, *shape))
    if positions is None:
        positions = [10.0 + step * i for i in range(n)]
    origin = np.array([-5.0, 3.0, 7.0])
    for k in range(n):
        instance = n - k  # instance 1 is the highest position
        _write_slice(folder / f"IM{(k * 7) % n:04d}", raws[k], origin + positions[k] * NORMAL,
                     instance, series_uid=series_uid)
    if mask is not None:
        (root / "GroundTruth").mkdir(exist_ok=True)
        scipy.io.savemat(root / "GroundTruth" / f"{case_id}.mat", {"Mask": mask})
    return raws


def test_fumpe_series_sorting_rescale_spacing_and_components(tmp_path):
    n, shape = 5, (6, 7)
    mask_instance = np.zeros((*shape, n), np.uint8)  # (y, x, z), z in InstanceNumber order
    mask_instance[1, 1, 0] = 1  # instance 1 = highest position = last sorted slice
    mask_instance[2, 2, 1] = 1  # touches the previous voxel only at a corner: same clot
    mask_instance[5, 6, 3:5] = 1  # a second clot in instances 4-5 = sorted slices 1, 0
    raws = _write_fumpe(tmp_path, "PAT002", n=n, shape=shape, mask=mask_instance)
    _write_fumpe(tmp_path, "PAT001", n=n, shape=shape, mask=np.zeros((*shape, n)))
    assert list_cases("fumpe", tmp_path) == ["PAT001", "PAT002"]
    scan = load_case("fumpe", tmp_path, "PAT002")
    assert scan.source == "fumpe" and scan.shape == (n, *shape)
    np.testing.assert_allclose(scan.hu, raws * 2.0 - 1024.0)  # sorted by position = written order
    assert scan.spacing == pytest.approx((1.25, 0.7, 0.6))
    assert scan.n_clots == 2
    first = scan.clots[4, 1, 1]
    assert first > 0 and scan.clots[3, 2, 2] == first
    second = scan.clots[0, 5, 6]
    assert second > 0 and second != first and scan.clots[1, 5, 6] == second
    assert np.count_nonzero(scan.clots) == 4
    assert load_case("fumpe", tmp_path, "PAT001").n_clots == 0


def test_read_dicom_series_rank_follows_instance_numbers(tmp_path):
    _write_fumpe(tmp_path, "P", n=4)
    hu, spacing, rank = read_dicom_series(tmp_path / "CT_scans" / "P")
    assert rank.tolist() == [3, 2, 1, 0] and hu.shape == (4, 6, 7)


def test_series_without_series_uid_is_read_as_one_series(tmp_path):
    """[documented] Slices that all lack SeriesInstanceUID cannot be told apart: one series."""
    for k in range(3):
        _write_slice(tmp_path / f"{k}.dcm", np.zeros((4, 4)), k * NORMAL, k + 1,
                     drop=("SeriesInstanceUID",))
    assert read_dicom_series(tmp_path)[0].shape == (3, 4, 4)


def test_fumpe_bad_input(tmp_path):
    mask = np.zeros((6, 7, 5), np.uint8)
    _write_fumpe(tmp_path / "ok", "P1", mask=mask)
    with pytest.raises(FileNotFoundError, match=r"GroundTruth.*P9\.mat"):
        load_case("fumpe", tmp_path / "ok", "P9")

    _write_fumpe(tmp_path / "shape", "P1", mask=np.zeros((7, 6, 5)))
    with pytest.raises(PEDataError, match=r"P1\.mat.*\(y, x, z\) = \(6, 7, 5\)"):
        load_case("fumpe", tmp_path / "shape", "P1")

    _write_fumpe(tmp_path / "gap", "P1", mask=mask, positions=[0, 1.25, 2.5, 5.0, 6.25])
    with pytest.raises(PEDataError, match="not uniformly spaced"):
        load_case("fumpe", tmp_path / "gap", "P1")

    _write_fumpe(tmp_path / "trunc", "P1", mask=mask)
    victim = sorted((tmp_path / "trunc" / "CT_scans" / "P1").iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:-20])
    with pytest.raises(PEDataError, match=f"{victim.name}.*truncated"):
        load_case("fumpe", tmp_path / "trunc", "P1")
    victim.write_bytes(b"garbage")
    with pytest.raises(PEDataError, match=f"{victim.name}.*not a readable DICOM"):
        load_case("fumpe", tmp_path / "trunc", "P1")

    folder = tmp_path / "nospacing" / "CT_scans" / "P1"
    folder.mkdir(parents=True)
    for k in range(3):
        _write_slice(folder / f"{k}.dcm", np.zeros((4, 4)), k * NORMAL, k + 1,
                     drop=("PixelSpacing",))
    with pytest.raises(PEDataError, match="PixelSpacing"):
        read_dicom_series(folder)

    # A MATLAB v7.3 (HDF5) file: 128-byte MAT header with version 0x0200, then HDF5 data.
    v73 = tmp_path / "ok" / "GroundTruth" / "P1.mat"
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5"
    v73.write_bytes(text.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02IM" + b"\x89HDF\r\n\x1a\n")
    with pytest.raises(PEDataError, match=r"P1\.mat.*v7\.3"):
        load_case("fumpe", tmp_path / "ok", "P1")

    v73.write_bytes(b"\x00" * 10)
    with pytest.raises(PEDataError, match=r"P1\.mat.*not a readable MATLAB"):
        load_case("fumpe", tmp_path / "ok", "P1")

    scipy.io.savemat(v73, {"mask": mask})
    with pytest.raises(PEDataError, match=r"no variable 'Mask'"):
        load_case("fumpe", tmp_path / "ok", "P1")


def test_written_dicom_is_real_dicom(tmp_path):
    """The fixture files are genuine DICOM (pydicom reads them back without force)."""
    _write_slice(tmp_path / "x.dcm", np.arange(12).reshape(3, 4), (0, 0, 0), 1)
    ds = pydicom.dcmread(tmp_path / "x.dcm")
    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(ds.pixel_array, np.arange(12).reshape(3, 4))
