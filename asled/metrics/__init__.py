"""Image-quality metrics. Full-reference (PSNR, SSIM, LPIPS) live in `asled.metrics.fr`."""

from asled.metrics.fr import LPIPSMetric, psnr, rgb_to_y, ssim

__all__ = ["LPIPSMetric", "psnr", "rgb_to_y", "ssim"]
