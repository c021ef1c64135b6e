"""Reference preparation: centre-crop the UW frame to W's field of view and resize it to W's size.

Following the paper, the reference is only cropped and resized: no spatial or colour alignment, so
the parallax and photometric differences between the lenses stay for the network to learn. W covers
about the central half of UW's field of view on the phones used (RealMCVSR: iPhone 12 Pro Max), hence
the default `fov_fraction = 0.5`. Bicubic is the default because it is what "upsampled" usually
means in reference-based super-resolution code; the other OpenCV kernels are offered for ablations.
"""

from __future__ import annotations

import cv2
import numpy as np

from asled.errors import ConfigError, DataError

INTERPOLATIONS = {
    "bicubic": cv2.INTER_CUBIC,
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "lanczos": cv2.INTER_LANCZOS4,
}


def centre_crop(image: np.ndarray, fov_fraction: float) -> np.ndarray:
    """The central `fov_fraction` of an image along both axes (at least one pixel each)."""
    height, width = image.shape[:2]
    crop_h = max(1, round(height * fov_fraction))
    crop_w = max(1, round(width * fov_fraction))
    top = (height - crop_h) // 2
    left = (width - crop_w) // 2
    return image[top : top + crop_h, left : left + crop_w]


def prepare_reference(
    uw: np.ndarray,
    size: tuple[int, int],
    fov_fraction: float = 0.5,
    interpolation: str = "bicubic",
) -> np.ndarray:
    """Crop UW `[H, W, 3]` uint8 to its central `fov_fraction` and resize it to `size = (width, height)`."""
    if not 0.0 < fov_fraction <= 1.0:
        raise ConfigError(f"reference.fov_fraction must be in (0, 1], got {fov_fraction}")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"reference.interpolation must be one of {sorted(INTERPOLATIONS)}, got {interpolation!r}")
    width, height = (int(v) for v in size)
    if width < 1 or height < 1:
        raise ConfigError(f"reference size must be positive (width, height), got {size}")
    if not isinstance(uw, np.ndarray) or uw.dtype != np.uint8 or uw.ndim != 3 or uw.shape[2] != 3:
        raise DataError(f"expected a uint8 UW frame [H, W, 3], got {getattr(uw, 'dtype', type(uw))} {getattr(uw, 'shape', None)}")
    crop = np.ascontiguousarray(centre_crop(uw, fov_fraction))
    if crop.shape[:2] == (height, width):
        return crop.copy()
    # cv2.resize saturates to [0, 255] for uint8, so bicubic/lanczos overshoot is clipped, not wrapped.
    return cv2.resize(crop, (width, height), interpolation=INTERPOLATIONS[interpolation])
