"""Temporal consistency: the flow-warping error with OpenCV's DIS flow (asled.metrics.temporal)."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data

from asled.metrics.temporal import clip_warping_errors, dis_flow, pair_flow, valid_mask, warping_error

SHIFT_X, SHIFT_Y = 3, 2  # camera pan per frame, pixels


@pytest.fixture(scope="module")
def pan() -> list[np.ndarray]:
    """Four crops of a real photograph, the window moving (3, 2) px per frame: content moves by (-3, -2)."""
    photo = data.astronaut()
    return [np.ascontiguousarray(photo[100 + SHIFT_Y * k : 196 + SHIFT_Y * k, 150 + SHIFT_X * k : 278 + SHIFT_X * k])
            for k in range(4)]


def test_dis_flow_recovers_the_pan(pan):
    forward = dis_flow(pan[0], pan[1])
    assert forward.shape == (96, 128, 2) and forward.dtype == np.float32
    inner = forward[16:-16, 16:-16]
    assert np.median(inner[..., 0]) == pytest.approx(-SHIFT_X, abs=0.1)
    assert np.median(inner[..., 1]) == pytest.approx(-SHIFT_Y, abs=0.1)
    # deterministic: the same inputs give the same flow, bit for bit
    assert np.array_equal(forward, dis_flow(pan[0], pan[1]))


def test_mask_drops_pixels_whose_match_leaves_the_frame(pan):
    forward, mask = pair_flow(pan[0], pan[1])
    # content moves left/up by (3, 2): the first columns/rows of frame t have no match in frame t+1
    assert not mask[:, :SHIFT_X].any() and not mask[:SHIFT_Y, :].any()
    assert mask[16:-16, 16:-16].mean() > 0.9
    # a flow field that points outside the frame everywhere leaves nothing to compare
    away = np.full_like(forward, 1000.0)
    assert not valid_mask(away, -away).any()
    assert warping_error(pan[0], pan[1], away, np.zeros(forward.shape[:2], bool)) is None


def test_warping_error_matches_direct_computation_for_integer_flow(pan):
    # With a constant integer flow, warping is a plain shift: E_t is computable by slicing.
    h, w = pan[0].shape[:2]
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = -SHIFT_X, -SHIFT_Y
    mask = np.zeros((h, w), bool)
    mask[SHIFT_Y:, SHIFT_X:] = True
    rng = np.random.default_rng(0)
    frame_t1 = rng.integers(0, 256, pan[1].shape, dtype=np.uint8)
    warped = frame_t1[: h - SHIFT_Y, : w - SHIFT_X].astype(np.float64)
    expected = np.abs(pan[0][SHIFT_Y:, SHIFT_X:].astype(np.float64) - warped).mean() / 255.0
    assert warping_error(pan[0], frame_t1, flow, mask) == pytest.approx(expected, abs=1e-9)


def test_consistent_video_scores_low_and_flicker_scores_its_amplitude(pan):
    errors = clip_warping_errors(pan)
    assert len(errors) == 3 and all(0 <= e < 0.01 for e in errors)
    # the same frames with alternating brightness (+-10 levels): the error grows by about 20/255
    flicker = [np.clip(f.astype(np.int16) + (10 if k % 2 else -10), 0, 255).astype(np.uint8) for k, f in enumerate(pan)]
    flickering = clip_warping_errors(flicker, flow_frames=pan)
    for clean, noisy in zip(errors, flickering):
        assert noisy - clean == pytest.approx(20 / 255, abs=0.01)
    assert clip_warping_errors(pan[:1]) == []


def test_bad_inputs_raise(pan):
    with pytest.raises(ValueError, match="sizes differ"):
        dis_flow(pan[0], pan[1][:-1])
    with pytest.raises(ValueError, match="uint8"):
        dis_flow(pan[0].astype(np.float32), pan[1].astype(np.float32))
    with pytest.raises(ValueError, match="flow frames"):
        clip_warping_errors(pan, pan[:2])
