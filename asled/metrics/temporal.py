"""Temporal consistency of a restored video: the flow-warping error between consecutive frames.

Definition (lower is better; 0 for a video whose frames agree exactly along the motion):

For consecutive frames t and t+1 of a clip, the optical flow is estimated with OpenCV's DIS
estimator (`cv2.DISOpticalFlow_create`, preset MEDIUM, on 8-bit luma), forwards f (t -> t+1) and
backwards b (t+1 -> t), on the ground-truth frames by default (`flow_source="gt"`: every method
is warped by the same motion, so a method cannot lower its score by confusing the flow) or on the
restored frames themselves (`flow_source="restored"`). The restored frame t+1 is warped back to
time t by bilinear sampling, W(p) = R_{t+1}(p + f(p)). A pixel p counts when it is not occluded:
p + f(p) lies inside the frame and the forward-backward check holds,
    |f(p) + b(p + f(p))|^2 <= 0.01 (|f(p)|^2 + |b(p + f(p))|^2) + 0.5
(Sundaram et al., ECCV 2010). The pair's error is the mean absolute difference between R_t and W
over the counted pixels and the three RGB channels, on the [0, 1] intensity scale:
    E_t = sum_p M(p) sum_c |R_t(p, c) - W(p, c)| / (3 sum_p M(p)) / 255.
A pair with no counted pixel has no error (None). A clip's score is the mean of its pairs' errors;
a dataset's is the mean over every pair of every clip (each pair weighs the same), mirroring how
PSNR is averaged over frames.

The ground truth itself does not score 0 (flow errors, lighting changes, motion blur in the
sharp frames), so `evaluate` also reports the ground truth's own error as a point of reference.
DIS needs no downloaded weights and runs on the CPU; its output is deterministic for given inputs.
"""

from __future__ import annotations

import cv2
import numpy as np

FLOW_SOURCES = ("gt", "restored")
# Forward-backward consistency thresholds of Sundaram et al. (2010), also used by Ruder et al. (2016).
FB_ALPHA = 0.01
FB_BETA = 0.5


def _gray(image_u8: np.ndarray) -> np.ndarray:
    if image_u8.dtype != np.uint8 or image_u8.ndim != 3 or image_u8.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB frame [H, W, 3], got {image_u8.dtype} {image_u8.shape}")
    return cv2.cvtColor(image_u8, cv2.COLOR_RGB2GRAY)


def dis_flow(src_u8: np.ndarray, dst_u8: np.ndarray) -> np.ndarray:
    """DIS optical flow from `src` to `dst` (8-bit RGB): float32 [H, W, 2], src(p) ~ dst(p + flow(p))."""
    if src_u8.shape != dst_u8.shape:
        raise ValueError(f"frame sizes differ: {src_u8.shape} vs {dst_u8.shape}")
    # A fresh estimator per call: DIS keeps no state between calls that matters here, and a shared
    # one would make results depend on call order if that ever changed.
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(_gray(src_u8), _gray(dst_u8), None)


def _sample_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


def warp_back(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image(p + flow(p)) by bilinear sampling, as float32 (outside the frame: 0, masked anyway)."""
    map_x, map_y = _sample_grid(flow)
    return cv2.remap(image.astype(np.float32), map_x, map_y, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def valid_mask(forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose match in t+1 is inside the frame and passes the forward-backward check."""
    h, w = forward.shape[:2]
    map_x, map_y = _sample_grid(forward)
    inside = (map_x >= 0) & (map_x <= w - 1) & (map_y >= 0) & (map_y <= h - 1)
    back = warp_back(backward, forward)
    round_trip = np.sum((forward + back) ** 2, axis=-1)
    bound = FB_ALPHA * (np.sum(forward**2, axis=-1) + np.sum(back**2, axis=-1)) + FB_BETA
    return inside & (round_trip <= bound)


def pair_flow(frame_t: np.ndarray, frame_t1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(forward flow t -> t+1, non-occlusion mask of frame t) from two 8-bit RGB frames."""
    forward = dis_flow(frame_t, frame_t1)
    backward = dis_flow(frame_t1, frame_t)
    return forward, valid_mask(forward, backward)


def warping_error(frame_t: np.ndarray, frame_t1: np.ndarray, forward: np.ndarray, mask: np.ndarray) -> float | None:
    """E_t of the module docstring for restored frames t, t+1 given the flow and mask (None if no pixel counts)."""
    if frame_t.shape != frame_t1.shape or frame_t.shape[:2] != forward.shape[:2] or mask.shape != forward.shape[:2]:
        raise ValueError(f"shapes disagree: frames {frame_t.shape} / {frame_t1.shape}, flow {forward.shape}, "
                         f"mask {mask.shape}")
    count = int(mask.sum())
    if count == 0:
        return None
    diff = np.abs(frame_t.astype(np.float32) - warp_back(frame_t1, forward))
    return float(diff[mask].astype(np.float64).sum() / (3.0 * count) / 255.0)


def clip_warping_errors(restored: list[np.ndarray], flow_frames: list[np.ndarray] | None = None) -> list[float | None]:
    """E_t for t = 0 .. T-2 of one clip; the flow comes from `flow_frames` (e.g. ground truth) or `restored`."""
    flow_frames = restored if flow_frames is None else flow_frames
    if len(flow_frames) != len(restored):
        raise ValueError(f"{len(restored)} restored frames but {len(flow_frames)} flow frames")
    errors = []
    for t in range(len(restored) - 1):
        forward, mask = pair_flow(flow_frames[t], flow_frames[t + 1])
        errors.append(warping_error(restored[t], restored[t + 1], forward, mask))
    return errors
