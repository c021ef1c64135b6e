"""Pixel-level conventions of the full-reference metrics, and PSNR.

Kept apart from SSIM and LPIPS (asled.metrics.fr) because training validates with PSNR and the demo
measures its blur strength with it: those steps depend on this file only, so editing SSIM or LPIPS
re-runs evaluation, not training (asled.stages lists each step's code).
"""

from __future__ import annotations

import math

import numpy as np


def check_pair(ref_u8: np.ndarray, dist_u8: np.ndarray) -> None:
    for name, img in (("reference", ref_u8), ("distorted", dist_u8)):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"{name} image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
    if ref_u8.shape != dist_u8.shape:
        raise ValueError(f"image sizes differ: {ref_u8.shape} vs {dist_u8.shape}")


def crop_border(img: np.ndarray, border: int) -> np.ndarray:
    if border <= 0:
        return img
    if 2 * border >= min(img.shape[:2]):
        raise ValueError(f"border {border} leaves nothing of a {img.shape[1]}x{img.shape[0]} image")
    return img[border:-border, border:-border]


def rgb_to_y(img_u8: np.ndarray) -> np.ndarray:
    """BT.601 luma of MATLAB's `rgb2ycbcr` for 8-bit RGB, as float64 in [16, 235]."""
    img = img_u8.astype(np.float64)
    return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0


def prepare_pair(ref_u8: np.ndarray, dist_u8: np.ndarray, border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    check_pair(ref_u8, dist_u8)
    ref, dist = crop_border(ref_u8, border), crop_border(dist_u8, border)
    if y_channel:
        return rgb_to_y(ref), rgb_to_y(dist)
    return ref.astype(np.float64), dist.astype(np.float64)


def psnr(ref_u8: np.ndarray, dist_u8: np.ndarray, border: int = 0, y_channel: bool = False) -> float:
    """PSNR in dB of 8-bit RGB images (MSE over all channels, data range 255); `inf` if identical."""
    ref, dist = prepare_pair(ref_u8, dist_u8, border, y_channel)
    mse = float(np.mean((ref - dist) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / mse)
