"""Preparing a split (blur, ground truth, reference), reference cropping, and raw-layout validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from damage import DAMAGES

from asled.data.demo import generate_demo
from asled.data.layout import split_clips, validate_raw
from asled.data.prepare import prepare_split
from asled.data.reference import prepare_reference
from asled.errors import ConfigError, DataError
from asled.io import read_png

SMALL = {"width": 64, "height": 48, "frames_per_clip": 14, "clips": {"train": 1, "valid": 1, "test": 2}}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "raw"
    generate_demo(root, seed=3, **SMALL)
    return root


@pytest.fixture()
def raw(demo_root, tmp_path) -> Path:
    """A private copy of the demo's test split, free to damage."""
    root = tmp_path / "raw"
    shutil.copytree(demo_root / "test", root / "test")
    return root


def frame(root: Path, camera: str, clip: str, name: str) -> np.ndarray:
    return read_png(root / "test" / "HR" / camera / clip / name)


# ---------------------------------------------------------------------------------- prepare_split


def test_prepare_writes_blur_gt_ref_per_window(raw, tmp_path):
    out = tmp_path / "prepared" / "test"
    manifest = prepare_split(raw, "test", out)
    for stream in ("blur", "gt", "ref"):
        assert sorted(p.name for p in (out / stream).iterdir()) == ["0000", "0001"]
        for clip in ("0000", "0001"):
            names = sorted(p.name for p in (out / stream / clip).iterdir())
            assert names == ["0000.png", "0001.png"]  # 14 frames = two 7-frame windows
            assert read_png(out / stream / clip / "0001.png").shape == (48, 64, 3)
    assert manifest["clips"]["0000"]["frames"] == 2
    assert manifest["clips"]["0000"]["centre_frames"] == ["0003.png", "0010.png"]
    assert manifest["settings"] == {
        "window": 7, "stride": 7, "space": "srgb", "fov_fraction": 0.5, "interpolation": "bicubic"
    }
    assert manifest["totals"] == {"clips": 2, "frames": 4}
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert [p.name for p in out.parent.iterdir()] == ["test"]  # no temporary folder left


def test_blur_is_the_rounded_mean_of_the_first_seven_w_frames(raw, tmp_path):
    out = tmp_path / "prepared"
    prepare_split(raw, "test", out)
    sharp = np.stack([frame(raw, "W", "0001", f"{i:04d}.png") for i in range(7)]).astype(np.float64)
    expected = np.clip(np.rint(sharp.sum(axis=0) / 7), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(read_png(out / "blur" / "0001" / "0000.png"), expected)


def test_gt_is_the_centre_w_frame_and_ref_the_centre_uw_frame(raw, tmp_path):
    out = tmp_path / "prepared"
    prepare_split(raw, "test", out)
    np.testing.assert_array_equal(read_png(out / "gt" / "0000" / "0001.png"), frame(raw, "W", "0000", "0010.png"))
    # Centre half of the 64x48 UW frame, upsampled bicubically to 64x48, computed independently.
    uw = frame(raw, "UW", "0000", "0010.png")
    expected = cv2.resize(np.ascontiguousarray(uw[12:36, 16:48]), (64, 48), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(read_png(out / "ref" / "0000" / "0001.png"), expected)


def test_sliding_windows_and_linear_space(raw, tmp_path):
    slide = prepare_split(raw, "test", tmp_path / "slide", stride=1)
    assert slide["clips"]["0000"]["frames"] == 8
    assert slide["clips"]["0000"]["centre_frames"][:2] == ["0003.png", "0004.png"]
    prepare_split(raw, "test", tmp_path / "linear", space="linear")
    srgb = read_png(tmp_path / "slide" / "blur" / "0000" / "0000.png").astype(int)
    linear = read_png(tmp_path / "linear" / "blur" / "0000" / "0000.png").astype(int)
    assert (linear >= srgb - 1).all()  # a linear-light mean is never darker than the sRGB mean


def test_prepare_replaces_a_stale_output(raw, tmp_path):
    out = tmp_path / "prepared"
    (out / "blur" / "9999").mkdir(parents=True)
    prepare_split(raw, "test", out)
    assert sorted(p.name for p in (out / "blur").iterdir()) == ["0000", "0001"]


def test_clip_shorter_than_the_window_is_named(raw, tmp_path):
    out = tmp_path / "prepared"
    with pytest.raises(DataError) as error:
        prepare_split(raw, "test", out, window=15, stride=15)
    assert str(raw / "test" / "HR" / "W" / "0000") in str(error.value)
    assert not out.exists()


def test_bad_settings_are_config_errors(raw, tmp_path):
    for kwargs in ({"window": 6}, {"space": "log"}, {"fov_fraction": 0.0}, {"interpolation": "nearest"}):
        with pytest.raises(ConfigError):
            prepare_split(raw, "test", tmp_path / "prepared", **kwargs)
    assert not (tmp_path / "prepared").exists()


def test_bad_input_leaves_no_output(raw, tmp_path):
    (raw / "test" / "HR" / "UW" / "0001" / "0013.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    out = tmp_path / "prepared" / "test"
    with pytest.raises(DataError, match="0013.png"):
        prepare_split(raw, "test", out)
    assert not (tmp_path / "prepared").exists()


# --------------------------------------------------------------------------------- reference


def test_reference_is_the_centre_crop_at_native_size():
    uw = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    np.testing.assert_array_equal(prepare_reference(uw, (4, 4)), uw[2:6, 2:6])


def test_reference_is_resized_to_w_and_stays_uint8():
    uw = np.tile(np.linspace(0, 255, 40).astype(np.uint8)[None, :, None], (20, 1, 3))
    for interpolation in ("bicubic", "bilinear", "area", "lanczos"):
        ref = prepare_reference(uw, (30, 12), fov_fraction=0.5, interpolation=interpolation)
        assert ref.shape == (12, 30, 3) and ref.dtype == np.uint8
    full = prepare_reference(uw, (40, 20), fov_fraction=1.0)
    np.testing.assert_array_equal(full, uw)


@pytest.mark.parametrize("kwargs", [{"fov_fraction": 0.0}, {"fov_fraction": 1.5}, {"interpolation": "nearest"}])
def test_reference_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        prepare_reference(np.zeros((8, 8, 3), np.uint8), (4, 4), **kwargs)


# ------------------------------------------------------------------------------------ layout


def test_validate_counts_clips_and_frames(raw):
    for check_pixels in (True, False):
        summary = validate_raw(raw, splits=("test",), check_pixels=check_pixels)
        assert summary["splits"] == {"test": {"clips": 2, "frames": 28}}
        assert summary["frame_size"] == {"UW": [64, 48], "W": [64, 48]}
    assert split_clips(raw, "test") == ["0000", "0001"]


@pytest.mark.parametrize("damage, message", DAMAGES, ids=[d.__name__ for d, _ in DAMAGES])
@pytest.mark.parametrize("check_pixels", [True, False])
def test_validate_names_the_bad_path(raw, damage, message, check_pixels):
    bad = damage(raw / "test" / "HR")
    with pytest.raises(DataError) as error:
        validate_raw(raw, splits=("test",), check_pixels=check_pixels)
    text = str(error.value)
    assert text.startswith(str(bad) + ":"), text
    assert message in text


def test_missing_root_says_how_to_get_data(tmp_path):
    with pytest.raises(DataError, match="asled data get"):
        validate_raw(tmp_path / "nowhere")


def test_corrupt_pixels_found_mid_run_leave_no_output(raw, tmp_path):
    # Header and end marker intact, compressed data zeroed: only decoding notices, half-way through.
    path = raw / "test" / "HR" / "W" / "0001" / "0010.png"
    data = bytearray(path.read_bytes())
    data[60:-20] = bytes(len(data) - 80)
    path.write_bytes(bytes(data))
    out = tmp_path / "prepared" / "test"
    with pytest.raises(DataError, match="0010.png"):
        prepare_split(raw, "test", out)
    assert not out.exists() and list(out.parent.iterdir()) == []
