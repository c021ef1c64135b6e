"""The prepared store: written by the prepare step, equal to the PNG streams, read by the loaders."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asled.data.dataset import TestClips, TrainClips, index_split, load_split
from asled.data.demo import generate_demo
from asled.data.prepare import prepare_split
from asled.data.store import ClipWriter, open_clip, stream_path
from asled.errors import DataError
from asled.io import read_png

SMALL = {"width": 64, "height": 48, "frames_per_clip": 21, "clips": {"train": 2, "valid": 1, "test": 2}}


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "raw"
    generate_demo(root, seed=4, **SMALL)
    return root


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prepared")
    for split in ("train", "test"):
        prepare_split(raw, split, out / split)
    return out


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_train_gets_the_store_only_test_gets_pngs_too(prepared):
    assert sorted(p.name for p in (prepared / "train").iterdir()) == ["manifest.json", "store"]
    assert sorted(p.name for p in (prepared / "test").iterdir()) == ["blur", "gt", "manifest.json", "ref", "store"]
    for clip in ("0000", "0001"):
        arrays = open_clip(prepared / "train", clip)
        assert {k: (v.dtype, v.shape) for k, v in arrays.items()} == {
            k: (np.uint8, (3, 48, 64, 3)) for k in ("blur", "ref", "gt")
        }  # 21 sharp frames = three 7-frame windows


def test_store_rows_equal_the_png_frames(prepared):
    split = prepared / "test"
    for clip in ("0000", "0001"):
        arrays = open_clip(split, clip)
        for stream in ("blur", "gt", "ref"):
            for k in range(3):
                np.testing.assert_array_equal(arrays[stream][k], read_png(split / stream / clip / f"{k:04d}.png"))


def test_train_store_equals_what_the_pngs_would_hold(raw, prepared, tmp_path):
    with_pngs = prepare_split(raw, "train", tmp_path / "train", pngs=True)
    assert with_pngs["pngs"] is True
    assert files(tmp_path / "train" / "store") == files(prepared / "train" / "store")
    for clip in ("0000", "0001"):
        np.testing.assert_array_equal(
            open_clip(prepared / "train", clip)["blur"][2], read_png(tmp_path / "train/blur" / clip / "0002.png")
        )


def test_parallel_workers_write_the_same_bytes(raw, prepared, tmp_path):
    manifest = prepare_split(raw, "test", tmp_path / "test", workers=2)
    assert files(tmp_path / "test") == files(prepared / "test")
    assert list(manifest["clips"]) == ["0000", "0001"]


def test_readers_prefer_the_store_and_agree_with_pngs(prepared, tmp_path):
    split = prepared / "test"
    png_only = tmp_path / "png_only"
    shutil.copytree(split, png_only, ignore=shutil.ignore_patterns("store"))
    assert [c.name for c in index_split(split)] == [c.name for c in index_split(png_only)] == ["0000", "0001"]
    from_store, from_pngs = load_split(split), load_split(png_only)
    for clip in from_store:
        for stream in ("blur", "ref", "gt"):
            np.testing.assert_array_equal(from_store[clip][stream], from_pngs[clip][stream])
    for (name_a, frames_a, data_a), (name_b, frames_b, data_b) in zip(TestClips(split), TestClips(png_only)):
        assert (name_a, frames_a) == (name_b, frames_b)
        for stream in data_a:
            assert torch.equal(data_a[stream], data_b[stream])


def test_train_clips_reads_memory_maps_and_draws_the_same_samples(prepared):
    split = prepared / "test"
    store = TrainClips(split, frames=3, crop=24, length=40, seed=3)
    pngs = TrainClips(split, frames=3, crop=24, length=40, seed=3, store=False, cache=False)
    assert store.use_store and not pngs.use_store
    for i in range(40):
        a, b = store[i], pngs[i]
        for stream in ("blur", "ref", "gt"):
            assert torch.equal(a[stream], b[stream]), (i, stream)
    mapped = store._mapped["0000"]["gt"]
    assert isinstance(mapped, np.memmap) and mapped.mode == "r"
    # a pickled dataset (DataLoader workers under spawn) re-opens the files instead of carrying arrays
    assert len(pickle.dumps(store)) < 20_000
    clone = pickle.loads(pickle.dumps(store))
    assert torch.equal(clone[5]["ref"], store[5]["ref"])


def test_train_split_without_pngs_trains_from_the_store(prepared):
    ds = TrainClips(prepared / "train", frames=3, crop=32, seed=0)
    assert len(ds) == 2 * (3 - 3 + 1) and ds[1]["blur"].shape == (3, 3, 32, 32)
    with pytest.raises(DataError, match=r"train/blur: stream folder is missing"):
        TrainClips(prepared / "train", frames=3, crop=32, store=False)


def test_store_asked_for_but_absent(prepared, tmp_path):
    png_only = tmp_path / "png_only"
    shutil.copytree(prepared / "test", png_only, ignore=shutil.ignore_patterns("store"))
    with pytest.raises(DataError, match=rf"{png_only / 'store'}: prepared store is missing"):
        TrainClips(png_only, frames=3, crop=16, store=True)


@pytest.fixture()
def damaged(prepared, tmp_path) -> Path:
    split = tmp_path / "test"
    shutil.copytree(prepared / "test", split)
    return split


def test_truncated_array_is_named(damaged):
    path = stream_path(damaged, "0001", "ref")
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(DataError, match=rf"^{path}: not a readable \.npy array.*re-run the prepare step"):
        TrainClips(damaged, frames=3, crop=16)


def test_stream_shape_mismatch_is_named(damaged):
    path = stream_path(damaged, "0000", "blur")
    np.save(path, np.zeros((2, 48, 64, 3), np.uint8))
    with pytest.raises(DataError, match=rf"^{path}: shape \(2, 48, 64, 3\) differs"):
        index_split(damaged)


def test_missing_array_and_wrong_dtype_are_named(damaged):
    missing = stream_path(damaged, "0000", "gt")
    missing.unlink()
    with pytest.raises(DataError, match=rf"^{missing}: prepared array is missing"):
        TestClips(damaged)
    np.save(missing, np.zeros((3, 48, 64, 3), np.float32))
    with pytest.raises(DataError, match=rf"^{missing}: expected a C-ordered uint8"):
        TestClips(damaged)


def test_clips_of_different_sizes_are_an_error(damaged):
    writer = ClipWriter(damaged, "0001", 3)
    for k in range(3):
        writer.write(k, {s: np.zeros((40, 64, 3), np.uint8) for s in ("blur", "gt", "ref")})
    writer.close()
    with pytest.raises(DataError, match="every clip of a split must share one frame size"):
        TrainClips(damaged, frames=3, crop=16)


def test_clip_writer_checks_order_and_count(tmp_path):
    writer = ClipWriter(tmp_path, "0000", 2)
    with pytest.raises(ValueError, match="in order"):
        writer.write(1, {"gt": np.zeros((4, 4, 3), np.uint8)})
    writer.write(0, {"gt": np.zeros((4, 4, 3), np.uint8)})
    with pytest.raises(ValueError, match="1 of 2 frames"):
        writer.close()
