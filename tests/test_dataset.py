"""Prepared-split loading and the training / test datasets."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from asled.data.dataset import TestClips, TrainClips, load_split
from asled.errors import DataError
from asled.io import write_png


def make_split(root: Path, clips: dict[str, int] | None = None, size: tuple[int, int] = (40, 56),
               identical: bool = False) -> Path:
    """A small prepared split from a real photograph: the camera pans over scikit-image's astronaut.

    gt = sharp crop at a moving offset; blur = mean of 5 crops along the motion (8-bit); ref = the
    sharp crop at half resolution, upsampled, shifted by 2 px and slightly brighter. With
    `identical`, the three streams hold the same frames (to check that augmentation keeps them aligned).
    """
    from skimage import data

    clips = clips or {"0000": 6, "0001": 5}
    photo = data.astronaut()
    h, w = size
    for ci, (clip, n) in enumerate(sorted(clips.items())):
        for k in range(n):
            y, x = 60 + 40 * ci + 3 * k, 100 + 30 * ci + 4 * k
            gt = photo[y : y + h, x : x + w]
            blur = np.mean([photo[y + j : y + j + h, x + j : x + j + w] for j in range(-2, 3)], axis=0)
            blur = np.round(blur).astype(np.uint8)
            small = cv2.resize(photo[y + 2 : y + 2 + h, x + 2 : x + 2 + w], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
            ref = np.clip(cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.int16) + 6, 0, 255)
            ref = ref.astype(np.uint8)
            if identical:
                blur = ref = gt
            for stream, image in (("blur", blur), ("gt", gt), ("ref", ref)):
                write_png(root / stream / clip / f"{k:04d}.png", np.ascontiguousarray(image))
    (root / "manifest.json").write_text(json.dumps({"clips": clips}))
    return root


def test_load_split_shapes(tmp_path):
    split = load_split(make_split(tmp_path))
    assert sorted(split) == ["0000", "0001"]
    for clip, n in (("0000", 6), ("0001", 5)):
        for stream in ("blur", "ref", "gt"):
            arr = split[clip][stream]
            assert arr.dtype == np.uint8 and arr.shape == (n, 40, 56, 3)
    assert not np.array_equal(split["0000"]["blur"], split["0000"]["gt"])


def test_load_split_missing_frame_names_path(tmp_path):
    root = make_split(tmp_path)
    (root / "ref" / "0001" / "0003.png").unlink()
    with pytest.raises(DataError, match=r"ref/0001.*0003\.png"):
        load_split(root)


def test_load_split_size_mismatch_names_path(tmp_path):
    root = make_split(tmp_path)
    write_png(root / "blur" / "0000" / "0002.png", np.zeros((40, 50, 3), np.uint8))
    with pytest.raises(DataError, match=r"blur/0000/0002\.png"):
        load_split(root)


def test_train_clips_shapes_and_range(tmp_path):
    ds = TrainClips(make_split(tmp_path), frames=4, crop=24, length=10, seed=0)
    assert len(ds) == 10
    item = ds[7]
    assert set(item) == {"blur", "ref", "gt"}
    for t in item.values():
        assert t.dtype == torch.float32 and t.shape == (4, 3, 24, 24)
        assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
    # default virtual length = number of valid windows: (6-4+1) + (5-4+1)
    assert len(TrainClips(tmp_path, frames=4, crop=24)) == 5


def test_train_clips_deterministic(tmp_path):
    root = make_split(tmp_path)
    a = TrainClips(root, frames=3, crop=16, length=50, seed=1)
    b = TrainClips(root, frames=3, crop=16, length=50, seed=1, cache=False)
    for i in (0, 5, 49):
        x, y, z = a[i], a[i], b[i]
        for k in x:
            assert torch.equal(x[k], y[k]) and torch.equal(x[k], z[k])
    # access order does not matter; other indices and seeds give other samples
    assert torch.equal(a[3]["gt"], TrainClips(root, frames=3, crop=16, length=50, seed=1)[3]["gt"])
    assert not all(torch.equal(a[0]["gt"], a[i]["gt"]) for i in range(1, 10))
    c = TrainClips(root, frames=3, crop=16, length=50, seed=2)
    assert [a.sample_params(i) for i in range(10)] != [c.sample_params(i) for i in range(10)]
    with pytest.raises(IndexError):
        a[50]


def test_train_clips_augmentation_matches_and_stays_aligned(tmp_path):
    root = make_split(tmp_path)
    raw = load_split(root)
    ds = TrainClips(root, frames=3, crop=20, length=64, seed=3)
    seen = set()
    for i in range(64):
        p = ds.sample_params(i)
        item = ds[i]
        seen.add((p["flip"], p["rot90"]))
        for stream in ("blur", "ref", "gt"):
            window = raw[p["clip"]][stream][p["start"] : p["start"] + 3, p["top"] : p["top"] + 20, p["left"] : p["left"] + 20]
            expected = torch.from_numpy(window.copy()).permute(0, 3, 1, 2).float() / 255
            if p["flip"]:
                expected = torch.flip(expected, dims=[-1])
            expected = torch.rot90(expected, p["rot90"], dims=(-2, -1))
            assert torch.equal(item[stream], expected), (i, stream, p)
    assert len(seen) == 8  # both flips and all four rotations occur

    # identical streams stay identical after augmentation
    same = TrainClips(make_split(tmp_path / "same", identical=True), frames=3, crop=20, length=16, seed=0)
    for i in range(16):
        item = same[i]
        assert torch.equal(item["blur"], item["gt"]) and torch.equal(item["ref"], item["gt"])


def test_train_clips_short_clip_and_small_frames_are_errors(tmp_path):
    root = make_split(tmp_path)
    with pytest.raises(DataError, match=r"0001.*5 frames.*frames"):
        TrainClips(root, frames=6, crop=16)
    with pytest.raises(DataError, match=r"smaller than the 48x48.*crop"):
        TrainClips(root, frames=3, crop=48)


def test_test_clips_yields_whole_clips(tmp_path):
    clips = TestClips(make_split(tmp_path))
    assert len(clips) == 2 and clips.num_frames == 11
    got = list(clips)
    assert [g[0] for g in got] == ["0000", "0001"]
    _, frames, data = got[1]
    assert frames == [f"{k:04d}.png" for k in range(5)]
    for t in data.values():
        assert t.shape == (5, 3, 40, 56) and t.dtype == torch.float32
