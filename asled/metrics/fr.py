"""Full-reference metrics on 8-bit RGB frames: PSNR, SSIM, LPIPS.

Protocol (the paper: "PSNR, SSIM, LPIPS on RGB", full frame):
- PSNR: mean squared error over all pixels and all three channels of the 8-bit images, data range
  255; `inf` for identical images.
- SSIM: Wang et al. 2004 with an 11x11-support Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population covariance, data range 255, computed per channel and averaged (BasicSR's convention;
  `skimage.metrics.structural_similarity` is called directly). `metrics.ssim` selects a peer's
  convention instead (`matlab3d`, `skimage_default`; see `asled.metrics.conventions`).
- LPIPS v0.1 (`lpips` package), AlexNet trunk by default (`metrics.lpips_net: vgg` for VGG16), inputs
  scaled to [-1, 1]; the trunk is staged offline (asled/metrics/perceptual.py).
- `border` crops that many pixels from every side first; `y_channel` evaluates PSNR/SSIM on the
  BT.601 luma of MATLAB's `rgb2ycbcr` (Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 for 8-bit
  R, G, B), kept in floating point as BasicSR does rather than rounded to 8 bits.
"""

from __future__ import annotations

import numpy as np

from asled.metrics.conventions import DEFAULT_SSIM, compute_ssim
from asled.metrics.lpips_trunk import TRUNKS
from asled.metrics.perceptual import LPIPSMetric, load_lpips
from asled.metrics.pixels import prepare_pair, psnr, rgb_to_y

__all__ = ["LPIPSMetric", "load_lpips", "psnr", "rgb_to_y", "score_pair", "ssim"]
ALEXNET_FILE = TRUNKS["alex"].torchvision_file


def ssim(ref_u8: np.ndarray, dist_u8: np.ndarray, border: int = 0, y_channel: bool = False,
         convention: str = DEFAULT_SSIM) -> float:
    """SSIM of 8-bit RGB images under `convention` (`asled.metrics.conventions.SSIM_CONVENTIONS`)."""
    ref, dist = prepare_pair(ref_u8, dist_u8, border, y_channel)
    return compute_ssim(ref, dist, convention)


def score_pair(
    ref_u8: np.ndarray,
    dist_u8: np.ndarray,
    *,
    border: int = 0,
    y_channel: bool = False,
    ssim_convention: str = DEFAULT_SSIM,
    lpips: bool = True,
    lpips_net: str = "alex",
    device: str = "auto",
) -> dict:
    """{"psnr", "ssim", "lpips"} of one image pair; "lpips" None plus "lpips_unavailable" (reason) without it."""
    result = {
        "psnr": psnr(ref_u8, dist_u8, border=border, y_channel=y_channel),
        "ssim": ssim(ref_u8, dist_u8, border=border, y_channel=y_channel, convention=ssim_convention),
    }
    metric, reason = load_lpips(lpips, device, lpips_net)
    result["lpips"] = metric(ref_u8, dist_u8, border=border) if metric is not None else None
    if metric is None:
        result["lpips_unavailable"] = reason
    result.update(border=border, y_channel=y_channel, ssim_convention=ssim_convention, lpips_net=lpips_net)
    return result
