"""Readers for public CT pulmonary angiography datasets with per-clot reference masks.

  cadpe  CAD-PE (IEEE DataPort, doi 10.21227/9bw7-6823): `ROOT/images/<id>.nrrd` and reference
         standards `ROOT/rs/<id>RefStd.nrrd`, one integer label per clot.
  fumpe  FUMPE (figshare): one DICOM series per patient in `ROOT/CT_scans/<id>/` (or `ROOT/<id>/`)
         and binary masks `ROOT/GroundTruth/<id>.mat`, variable `Mask`, stored (y, x, z).

Every reader returns `CTScan`s: float32 HU in (z, y, x) order with (z, y, x) spacing in mm and
int32 clot instance labels 1..n (relabelled to consecutive integers). A scan whose mask is all
zero is valid and has no clots. `list_cases` lists case ids without reading any volume, so an
application can split by patient first and load only what it needs with `load_case`.

Bad input raises `PEDataError` (a `ValueError`) or `FileNotFoundError`, naming the file and what
was expected: a missing mask or image, a volume without spacing, a corrupt or truncated NRRD or
DICOM file, a mask whose shape does not match its volume, a MATLAB v7.3 mask.

[assumed] NRRD voxel values are HU as stored (CAD-PE has no rescale fields); voxel orientation
(direction signs, obliquity) is not resampled, only the axis order and spacing are used.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import nrrd
import numpy as np
import pydicom
import scipy.io
from pydicom.errors import InvalidDicomError
from scipy import ndimage
from scipy.io.matlab import MatReadError

from ftjax.apps.pe.ct import CTDataError, CTScan


class PEDataError(CTDataError):
    """A PE dataset file that cannot be used as it is (the message names the file and why)."""


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing {what}")
    return path


def _consecutive_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    """Map the distinct positive labels of a mask to 1..n (0 stays background)."""
    if not np.issubdtype(labels.dtype, np.integer) and labels.dtype != np.bool_:
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise PEDataError(f"{path}: mask values must be integer labels")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise PEDataError(f"{path}: mask has negative labels (min {labels.min()})")
    values = np.unique(labels[labels > 0])
    out = np.zeros(labels.shape, dtype=np.int32)
    fg = labels > 0
    out[fg] = np.searchsorted(values, labels[fg]) + 1
    return out


# ----------------------------------------------------------------------------------------- NRRD


def read_nrrd(path: str | Path) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """A 3-D NRRD file as (array in (z, y, x) order, (z, y, x) spacing in mm or None).

    NRRD stores the fastest axis first (x, y, z); pynrrd's `index_order='C'` returns (z, y, x).
    Spacing comes from `space directions` (norm of each axis vector) or else `spacings`, both
    listed in file (x, y, z) order and so reversed here.
    """
    path = Path(path)
    _require_file(path, "NRRD file")
    try:
        data, header = nrrd.read(str(path), index_order="C")
    except (nrrd.NRRDError, ValueError, OSError, EOFError, zlib.error, KeyError) as err:
        raise PEDataError(
            f"{path}: not a readable NRRD file (corrupt or truncated?): {err}"
        ) from err
    if data.ndim != 3:
        raise PEDataError(f"{path}: expected a 3-D volume, got {data.ndim}-D shape {data.shape}")
    spacing = None
    if "space directions" in header:
        dirs = np.asarray(header["space directions"], dtype=np.float64)
        if dirs.shape[0] == 3 and np.all(np.isfinite(dirs)):
            spacing = np.linalg.norm(dirs, axis=1)
    if spacing is None and "spacings" in header:
        spacing = np.asarray(header["spacings"], dtype=np.float64)
    if spacing is None or spacing.shape != (3,) or not np.all(np.isfinite(spacing) & (spacing > 0)):
        return data, None
    return data, tuple(float(s) for s in spacing[::-1])  # type: ignore[return-value]


def list_cadpe(root: str | Path) -> list[str]:
    """CAD-PE case ids: the stems of `ROOT/images/*.nrrd`, sorted."""
    images = Path(root) / "images"
    if not images.is_dir():
        raise FileNotFoundError(
            f"{images}: missing CAD-PE images folder (expected images/<id>.nrrd)"
        )
    return sorted(p.name[: -len(".nrrd")] for p in images.glob("*.nrrd") if p.is_file())


def load_cadpe(root: str | Path, case_id: str, masks: bool = True) -> CTScan:
    """One CAD-PE case: `images/<id>.nrrd` and its reference standard `rs/<id>RefStd.nrrd`
    (``masks=False``: the image alone, for new cases without a reference)."""
    root = Path(root)
    image_path = _require_file(root / "images" / f"{case_id}.nrrd", "CAD-PE image")
    hu, spacing = read_nrrd(image_path)
    if spacing is None:
        raise PEDataError(
            f"{image_path}: no voxel spacing (expected a 'space directions' or 'spacings' field)"
        )
    if not masks:
        return _unlabelled(case_id, hu, spacing, "cadpe")
    mask_path = _require_file(root / "rs" / f"{case_id}RefStd.nrrd", "CAD-PE reference mask")
    labels, mask_spacing = read_nrrd(mask_path)
    if labels.shape != hu.shape:
        raise PEDataError(
            f"{mask_path}: mask shape {labels.shape} (z, y, x) does not match image {image_path} "
            f"shape {hu.shape}"
        )
    if mask_spacing is not None and not np.allclose(mask_spacing, spacing, rtol=1e-3):
        raise PEDataError(
            f"{mask_path}: mask spacing {mask_spacing} does not match image spacing {spacing}"
        )
    return CTScan(case_id, hu.astype(np.float32), spacing, _consecutive_labels(labels, mask_path),
                  "cadpe")


# ---------------------------------------------------------------------------------------- DICOM


def _dicom_slice(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    """One DICOM slice and its pixels in HU (RescaleSlope / RescaleIntercept applied)."""
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as err:
        raise PEDataError(
            f"{path}: not a readable DICOM file (corrupt or truncated?): {err}"
        ) from err
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "PixelData"):
        if tag not in ds:
            raise PEDataError(f"{path}: DICOM slice lacks {tag} (needed for a CT volume)")
    try:
        pixels = ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken pixel data
        raise PEDataError(f"{path}: unreadable or truncated pixel data: {err}") from err
    if pixels.ndim != 2:
        raise PEDataError(f"{path}: expected one 2-D slice per file, got pixels {pixels.shape}")
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    return ds, pixels.astype(np.float32) * slope + intercept


def read_dicom_series(
    folder: str | Path,
) -> tuple[np.ndarray, tuple[float, float, float], np.ndarray]:
    """A single-series DICOM folder as (HU (z, y, x), spacing (z, y, x) mm, instance_rank).

    Every regular file in the folder (except hidden files and DICOMDIR) must be a slice of the
    series. Slices are sorted by their position along the slice normal (ImagePositionPatient .
    (row cosines x column cosines)); slice spacing is the step between sorted positions, which
    must be uniform (a missing or duplicated slice is an error); in-plane spacing is PixelSpacing
    (row spacing = y, column spacing = x). instance_rank[j] is the rank of sorted slice j in
    InstanceNumber order (file-name order if a slice lacks InstanceNumber), to reorder masks that
    follow the acquisition order.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing DICOM series folder")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
        and p.name.upper() != "DICOMDIR"
    )
    if len(files) < 2:
        raise PEDataError(
            f"{folder}: {len(files)} DICOM file(s); a volume needs at least 2 slices to know its "
            "slice spacing"
        )
    slices = [_dicom_slice(p) for p in files]
    ref_ds, ref_px = slices[0]
    orient = np.asarray(ref_ds.ImageOrientationPatient, dtype=np.float64)
    pixel_spacing = np.asarray(ref_ds.PixelSpacing, dtype=np.float64)
    for path, (ds, px) in zip(files, slices, strict=True):
        if px.shape != ref_px.shape:
            raise PEDataError(
                f"{path}: slice shape {px.shape} differs from {files[0]} {ref_px.shape}"
            )
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=np.float64), orient,
                           atol=1e-4):
            raise PEDataError(f"{path}: ImageOrientationPatient differs from {files[0]}")
        if not np.allclose(np.asarray(ds.PixelSpacing, dtype=np.float64), pixel_spacing, rtol=1e-4):
            raise PEDataError(f"{path}: PixelSpacing differs from {files[0]}")
    if pixel_spacing.shape != (2,) or not np.all(pixel_spacing > 0):
        raise PEDataError(
            f"{files[0]}: PixelSpacing must be two positive values, got {pixel_spacing}"
        )
    normal = np.cross(orient[:3], orient[3:])
    positions = np.array([np.dot(np.asarray(ds.ImagePositionPatient, float), normal)
                          for ds, _ in slices])
    order = np.argsort(positions, kind="stable")
    steps = np.diff(positions[order])
    step = float(np.median(steps))
    if step <= 1e-3 or np.any(np.abs(steps - step) > 0.1 * step):
        raise PEDataError(
            f"{folder}: slice positions along the normal are not uniformly spaced (steps "
            f"{np.round(steps, 3).tolist()} mm); duplicated or missing slices?"
        )
    if all("InstanceNumber" in ds for ds, _ in slices):
        acquisition = np.argsort([int(ds.InstanceNumber) for ds, _ in slices], kind="stable")
    else:
        acquisition = np.arange(len(files))
    rank = np.empty(len(files), dtype=np.int64)
    rank[acquisition] = np.arange(len(files))
    hu = np.stack([slices[i][1] for i in order])
    spacing = (step, float(pixel_spacing[0]), float(pixel_spacing[1]))
    return hu, spacing, rank[order]


def _fumpe_series_root(root: Path) -> Path:
    return root / "CT_scans" if (root / "CT_scans").is_dir() else root


def list_fumpe(root: str | Path) -> list[str]:
    """FUMPE case ids: the patient folders under `ROOT/CT_scans/` (or `ROOT/`), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: missing FUMPE dataset folder")
    series_root = _fumpe_series_root(root)
    return sorted(
        p.name for p in series_root.iterdir()
        if p.is_dir() and p.name != "GroundTruth" and not p.name.startswith(".")
    )


def read_fumpe_mask(path: str | Path) -> np.ndarray:
    """A FUMPE ground-truth mask: variable `Mask` of a MATLAB (< v7.3) file, as stored (y, x, z)."""
    path = Path(_require_file(Path(path), "FUMPE ground-truth mask (.mat)"))
    try:
        contents = scipy.io.loadmat(str(path))
    except NotImplementedError as err:  # scipy raises this for HDF5-based v7.3 files
        raise PEDataError(
            f"{path}: MATLAB v7.3 (HDF5) file, which scipy.io.loadmat cannot read; re-save it "
            "with save(..., '-v7') or convert the 'Mask' variable to a v7 .mat file"
        ) from err
    except (MatReadError, ValueError, OSError, EOFError, TypeError, zlib.error) as err:
        raise PEDataError(
            f"{path}: not a readable MATLAB file (corrupt or truncated?): {err}"
        ) from err
    if "Mask" not in contents:
        keys = sorted(k for k in contents if not k.startswith("__"))
        raise PEDataError(f"{path}: no variable 'Mask' (found {keys})")
    mask = np.asarray(contents["Mask"])
    if mask.ndim != 3:
        raise PEDataError(f"{path}: 'Mask' must be 3-D (y, x, z), got shape {mask.shape}")
    return mask


def load_fumpe(
    root: str | Path,
    case_id: str,
    mask_slice_order: Literal["instance", "position"] = "instance",
    masks: bool = True,
) -> CTScan:
    """One FUMPE patient: its DICOM series and `GroundTruth/<id>.mat` (binary, (y, x, z)).

    The binary mask becomes instance labels by 3-D connected components (26-connectivity [assumed]:
    voxels touching at a corner belong to one clot). [assumed] The mask's z axis follows the
    series' InstanceNumber order (`mask_slice_order="instance"`); pass "position" if it follows
    the slice position order instead. Nonzero mask values count as clot.
    """
    root = Path(root)
    folder = _fumpe_series_root(root) / case_id
    if not masks:
        hu, spacing, _ = read_dicom_series(folder)
        return _unlabelled(case_id, hu, spacing, "fumpe")
    mask = read_fumpe_mask(root / "GroundTruth" / f"{case_id}.mat")
    hu, spacing, rank = read_dicom_series(folder)
    expected = (hu.shape[1], hu.shape[2], hu.shape[0])
    if mask.shape != expected:
        raise PEDataError(
            f"{root / 'GroundTruth' / f'{case_id}.mat'}: Mask shape {mask.shape} does not match "
            f"the series in {folder}: expected (y, x, z) = {expected}"
        )
    mask_zyx = np.transpose(mask, (2, 0, 1))
    if mask_slice_order == "instance":
        mask_zyx = mask_zyx[rank]
    elif mask_slice_order != "position":
        raise ValueError(
            f"mask_slice_order must be 'instance' or 'position', got {mask_slice_order!r}"
        )
    clots, _ = ndimage.label(mask_zyx != 0, structure=np.ones((3, 3, 3), dtype=bool))
    return CTScan(case_id, hu, spacing, clots.astype(np.int32), "fumpe")


def _unlabelled(case_id: str, hu: np.ndarray, spacing: tuple[float, float, float],
                source: str) -> CTScan:
    """A scan read without its reference: ``clots`` is all zero and means "not known"."""
    return CTScan(case_id, np.asarray(hu, np.float32), spacing, np.zeros(hu.shape, np.int32),
                  source)


# ------------------------------------------------------------------------------------- dispatch

_DATASETS: dict[str, tuple[Callable[[str | Path], list[str]], Callable[..., CTScan]]] = {
    "cadpe": (list_cadpe, load_cadpe),
    "fumpe": (list_fumpe, load_fumpe),
}

DATASETS = tuple(_DATASETS)  # the --data=NAME:DIR names


def _dataset(name: str) -> tuple[Callable[[str | Path], list[str]], Callable[..., CTScan]]:
    if name not in _DATASETS:
        raise ValueError(f"unknown PE dataset {name!r}; known: {sorted(_DATASETS)}")
    return _DATASETS[name]


def list_cases(dataset: str, root: str | Path) -> list[str]:
    """Case (patient) ids of a dataset folder, without reading volumes (split by patient first)."""
    return _dataset(dataset)[0](root)


def load_case(dataset: str, root: str | Path, case_id: str, masks: bool = True) -> CTScan:
    """Load one case of `dataset` ("cadpe" or "fumpe") from its folder; ``masks=False`` reads
    the CT alone (new cases without a reference standard)."""
    return _dataset(dataset)[1](root, case_id, masks=masks)
