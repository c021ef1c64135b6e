"""SSIM conventions of the peers, and the one-line description of a scoring protocol for table captions.

Papers compare SSIM numbers computed under different conventions; `metrics.ssim` picks one, so a
user can score our restored frames the way a peer's paper did (only evaluation and tables re-run):

- `gaussian2d` (default; the paper's RGB protocol, BasicSR `calculate_ssim` and mmagic): Wang et al.
  2004 per channel with an 11x11 Gaussian window (sigma 1.5), population covariance, the map kept where
  the window fits inside the image (5 pixels trimmed from each side), channels averaged.
- `matlab3d` (NAFNet's and DSTNet's `calculate_ssim`, default `ssim3d=True`, which follow MATLAB's
  `ssim` on an H x W x 3 array taken as a volume): one 11x11x11 Gaussian (sigma 1.5 on every axis) over
  rows, columns *and* the three colour channels, replicate padding on all three axes (so the channel
  axis [R G B] is read as R..R R G B B..B), the SSIM map averaged over every pixel and channel with no
  trimming. On a single channel (`metrics.y_channel`) it is the 2-D Gaussian with replicate padding and
  no trimming, which is what those repositories compute on Y (`_ssim_cly`). They run it in float32 on
  the GPU; we compute in float64 (differences of the order of 1e-7).
- `skimage_default` (RefVSR's `evaluation/metrics.py` and HCDeblur's `evaluate_HCBlur.py`:
  `structural_similarity(..., multichannel=True, data_range=1.0)` on [0, 1] floats): scikit-image's
  defaults, a 7x7 uniform window, sample covariance (N - 1), 3 pixels trimmed from each side, channels
  averaged. SSIM is unchanged by scaling both images and the data range together, so it is computed on
  the 8-bit values with data range 255.

All three use K1 = 0.01, K2 = 0.03 and data range 255 (C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2).
"""

from __future__ import annotations

import numpy as np

from asled.errors import ConfigError

DEFAULT_SSIM = "gaussian2d"
# convention -> how a table caption names it
SSIM_CONVENTIONS = {
    "gaussian2d": "SSIM 2-D Gaussian 11x11 (sigma 1.5) per channel, valid region (BasicSR/mmagic)",
    "matlab3d": "SSIM 3-D Gaussian 11x11x11 (sigma 1.5) over rows, columns and channels, replicate padding "
                "(MATLAB volume; NAFNet/DSTNet)",
    "skimage_default": "SSIM scikit-image default 7x7 uniform window, sample covariance (RefVSR/HCDeblur)",
}
DATA_RANGE = 255.0
C1, C2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2


def check_convention(convention: str, key: str = "metrics.ssim") -> None:
    if convention not in SSIM_CONVENTIONS:
        raise ConfigError(f"{key} must be one of {', '.join(SSIM_CONVENTIONS)}, got {convention!r}")


def compute_ssim(ref: np.ndarray, dist: np.ndarray, convention: str = DEFAULT_SSIM) -> float:
    """SSIM of two float64 images on the 0-255 scale, [H, W, C] or [H, W] (one channel)."""
    check_convention(convention)
    if convention == "matlab3d":
        return _ssim_gaussian_volume(ref, dist)
    from skimage.metrics import structural_similarity

    channel_axis = 2 if ref.ndim == 3 else None
    if convention == "skimage_default":
        return float(structural_similarity(ref, dist, data_range=DATA_RANGE, channel_axis=channel_axis))
    return float(structural_similarity(ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=DATA_RANGE, K1=0.01, K2=0.03, channel_axis=channel_axis))


def gaussian_kernel_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """OpenCV's `getGaussianKernel(size, sigma)`: sampled exp(-x^2 / 2 sigma^2), summing to 1."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    kernel = np.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def _ssim_gaussian_volume(ref: np.ndarray, dist: np.ndarray) -> float:
    """`matlab3d`: the separable 11-tap Gaussian along every axis of the array, replicate padding, map mean."""
    from scipy.ndimage import correlate1d

    kernel = gaussian_kernel_1d()

    def smooth(volume: np.ndarray) -> np.ndarray:
        # 'nearest' is replicate padding, valid however short the axis (the 3-long channel axis too)
        for axis in range(volume.ndim):
            volume = correlate1d(volume, kernel, axis=axis, mode="nearest")
        return volume

    mu1, mu2 = smooth(ref), smooth(dist)
    var1 = smooth(ref * ref) - mu1 * mu1
    var2 = smooth(dist * dist) - mu2 * mu2
    cov = smooth(ref * dist) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + C1) * (2 * cov + C2)) / ((mu1 * mu1 + mu2 * mu2 + C1) * (var1 + var2 + C2))
    return float(ssim_map.mean())


def protocol_text(border: int, y_channel: bool, ssim: str = DEFAULT_SSIM) -> str:
    """How the frames were scored, for a table's intro: e.g. "RGB, full frame; SSIM 2-D Gaussian ..."."""
    check_convention(ssim)
    space = "Y channel (BT.601 studio range, MATLAB rgb2ycbcr)" if y_channel else "RGB"
    frame = f"{border}-pixel border cropped" if border else "full frame"
    return f"{space}, {frame}; {SSIM_CONVENTIONS[ssim]}"


def protocol_tag(border: int, y_channel: bool, ssim: str = DEFAULT_SSIM) -> str:
    """The short form for a table title: e.g. "RGB, full frame, SSIM 2-D Gaussian"."""
    check_convention(ssim)
    names = {"gaussian2d": "SSIM 2-D Gaussian", "matlab3d": "SSIM 3-D Gaussian (MATLAB)",
             "skimage_default": "SSIM 7x7 uniform (scikit-image)"}
    return f"{'Y' if y_channel else 'RGB'}, {f'border {border}' if border else 'full frame'}, {names[ssim]}"
