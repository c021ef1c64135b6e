"""Blur synthesis against hand computations: windows, sRGB and linear-light averaging, rounding."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asled.data.blur import (
    average_frames,
    linear_to_srgb,
    srgb_to_linear,
    windows,
)
from asled.errors import ConfigError, DataError


def frames_of(*values: int) -> np.ndarray:
    """N one-pixel RGB frames whose every channel holds the given value."""
    return np.array(values, dtype=np.uint8).reshape(-1, 1, 1, 1).repeat(3, axis=3)


def test_non_overlapping_windows_drop_the_partial_tail():
    assert windows(20, 7, 7) == [(0, 3), (7, 10)]
    assert windows(21, 7, 7) == [(0, 3), (7, 10), (14, 17)]


def test_sliding_windows_step_by_stride():
    assert windows(9, 7, 1) == [(0, 3), (1, 4), (2, 5)]
    assert windows(11, 3, 4) == [(0, 1), (4, 5), (8, 9)]


def test_too_few_frames_give_no_window():
    assert windows(6, 7, 7) == []
    assert windows(0, 7, 7) == []


@pytest.mark.parametrize("window, stride", [(6, 7), (0, 1), (7, 0)])
def test_bad_window_or_stride_is_a_config_error(window, stride):
    with pytest.raises(ConfigError, match="blur"):
        windows(20, window, stride)


def test_srgb_mean_rounds_half_to_even():
    # Means 0.5 -> 0, 1.5 -> 2, 2.5 -> 2 (half to even), 61/3 = 20.33 -> 20, 254.5 -> 254.
    cases = [((0, 1), 0), ((1, 2), 2), ((2, 3), 2), ((10, 20, 31), 20), ((254, 255), 254), ((7,), 7)]
    for values, expected in cases:
        assert average_frames(frames_of(*values)).item(0) == expected, values


def test_srgb_mean_is_per_pixel_and_per_channel():
    a = np.array([[[0, 100, 255], [3, 4, 5]]], dtype=np.uint8)
    b = np.array([[[2, 101, 255], [5, 4, 8]]], dtype=np.uint8)
    out = average_frames(np.stack([a, b]))
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    # 100.5 -> 100 and 6.5 -> 6 (half to even); 1, 255, 4, 4 exact.
    assert out.tolist() == [[[1, 100, 255], [4, 4, 6]]]


def hand_linear_mean(values: tuple[int, ...]) -> float:
    """The sRGB value (0-255, unrounded) of the linear-light mean, from the IEC 61966-2-1 formulas."""

    def decode(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    def encode(v: float) -> float:
        return 12.92 * v if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055

    return 255 * encode(sum(decode(v / 255) for v in values) / len(values))


def test_linear_mean_matches_the_hand_formula():
    # Black and white average to linear 0.5, i.e. sRGB 1.055 * 0.5 ** (1 / 2.4) - 0.055 = 187.516.
    assert hand_linear_mean((0, 255)) == pytest.approx(187.516, abs=1e-3)
    assert average_frames(frames_of(0, 255), "linear").item(0) == 188
    for values in [(128, 255), (50, 60, 200), (1, 2, 3, 4, 5, 6, 250)]:
        expected = round(hand_linear_mean(values))
        assert average_frames(frames_of(*values), "linear").item(0) == expected, values


def test_linear_mean_is_brighter_than_srgb_mean_for_mixed_values():
    frames = frames_of(0, 255)
    assert average_frames(frames, "linear").item(0) > average_frames(frames, "srgb").item(0) == 128


def test_linear_mean_is_exact_on_the_linear_toe():
    # 0 and 10 both lie on the curve's linear segment, so the mean is exactly 5.
    assert average_frames(frames_of(0, 10), "linear").item(0) == 5


def test_srgb_curve_round_trips_every_8bit_value():
    values = np.arange(256) / 255.0
    back = np.rint(linear_to_srgb(srgb_to_linear(values)) * 255)
    assert back.tolist() == list(range(256))
    assert math.isclose(float(srgb_to_linear(np.array(1.0))), 1.0)


def test_unknown_space_is_a_config_error():
    with pytest.raises(ConfigError, match="space"):
        average_frames(frames_of(1, 2), "log")


def blur_clip(frames: np.ndarray, window: int, stride: int) -> tuple[list[int], list[int]]:
    """What prepare and the demo do per clip: average every window, keep its centre as ground truth."""
    spans = windows(len(frames), window, stride)
    return [int(average_frames(frames[s : s + window])[0, 0, 0]) for s, _ in spans], [c for _, c in spans]


def test_each_window_averages_to_one_frame_with_its_centre_as_ground_truth():
    assert blur_clip(frames_of(*[10 * i for i in range(15)]), 7, 7) == ([30, 100], [3, 10])  # 0..60, 70..130
    values, centres = blur_clip(frames_of(*range(0, 90, 10)), 3, 1)
    assert centres == list(range(1, 8)) and values == [10 * c for c in centres]


def test_even_windows_are_refused_and_short_clips_have_none():
    with pytest.raises(ConfigError, match="odd"):
        windows(8, window=4, stride=4)
    assert windows(5, window=7) == []


def test_average_frames_rejects_non_uint8_input():
    with pytest.raises(DataError, match="uint8"):
        average_frames(np.zeros((2, 1, 1, 3), dtype=np.float32))
