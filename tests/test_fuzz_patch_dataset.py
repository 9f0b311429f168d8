"""Fuzz family for the cached patch data set (``ftjax.data.patch_dataset``): a cache damaged on
disk (a full disk, a truncated copy, flipped bits, a hand-edited JSON) is refused with one
``DatasetError`` line naming the data set, or read with every patch and label of sane shape and
range; never another exception, a crash or a hang (the contract of ``reading_child``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fuzz_support import DAMAGES, damaged
from hypothesis import strategies as st
from reading_child import MIN_INPUTS, Case, all_sane, child_fixture, fuzz

from ftjax.data import patch_dataset
from ftjax.data.patch_dataset import CaseTable, DatasetError, DatasetSpec, PatchDataset

SHAPE, K = (8, 8, 3), 2  # patch shape, patches per candidate


class _Producer:
    """Three candidates per case, one positive; patches of the case's own gray level."""

    def table(self, case: str) -> CaseTable:
        return CaseTable(np.array([0, 1, 0]), {"x": np.arange(3, dtype=np.float32)},
                         {"lesions": 1})

    def patches(self, case: str, candidates: np.ndarray) -> np.ndarray:
        level = 40 * int(case[-1])
        return np.full((len(candidates), K, *SHAPE), level, np.uint8)


def read_dataset(kind: str, folder: Path) -> list[tuple[Any, ...]]:
    """What a training run reads: the training split, the candidate splits' indexes and the
    test patches."""
    ds = PatchDataset(folder)
    train = ds.training()
    ds.index("validation")
    index = ds.index("test")
    test = ds.candidates("test", np.arange(len(index["label"])), index["label"])
    patches = test.patches(np.arange(len(test)))
    return [(train.patches.shape[1:] == SHAPE and train.patches.dtype == np.uint8,
             train.patches.shape),
            (bool(np.isin(train.labels, (0, 1)).all()), train.labels.tolist()),
            (patches.shape[1:] == (K, *SHAPE) and patches.dtype == np.uint8, patches.shape)]


child = child_fixture(read_dataset, DatasetError)


@pytest.fixture(scope="module")
def dataset_files(tmp_path_factory) -> dict[str, bytes]:
    """Every file of a small generated data set, by path inside it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTJAX_CACHE", str(tmp_path_factory.mktemp("cache")))
        spec = DatasetSpec(app="fuzz", params={}, train_cases=("c1", "c2"),
                           validation_cases=("c3",), test_cases=("c4",), patch_shape=SHAPE,
                           patches_per_candidate=K, info_fields={"x": ((), "float32")},
                           max_train_patches=8)
        root = patch_dataset.build_or_load(spec, _Producer(), log=None).path
    assert read_dataset("", root)[0][1] == (8, *SHAPE)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@st.composite
def damaged_datasets(draw: st.DrawFn, files: dict[str, bytes]) -> Case:
    """One file of the data set damaged (its record files, TFDS's JSON, meta.json) or gone."""
    name = draw(st.sampled_from(sorted(files)))
    kind = draw(st.sampled_from((*DAMAGES, "missing")))
    if kind == "missing":
        return Case("dataset", f"{name} missing", {k: v for k, v in files.items() if k != name})
    what, content = draw(damaged(files[name], kind))
    return Case("dataset", f"{name} {what}", {**files, name: content})


def test_fuzz_damaged_patch_dataset(child, dataset_files, tmp_path):
    assert fuzz(child, tmp_path / "case", damaged_datasets(dataset_files), 150,
                all_sane) >= MIN_INPUTS
