"""MASA-SR-style matching: the ALM replacement of Supplementary Table 1, row (g).

After MASA-SR (Lu et al., CVPR 2021, "MASA-SR: Matching Acceleration and Spatial Adaptation for
Reference-Based Image Super-Resolution"), at one scale and in plain PyTorch (CPU, any H, W):

  * Match & extraction, coarse to fine: blurry and reference features are average-pooled by `scale`
    (4); every coarse blurry cell finds its most cosine-similar coarse reference cell anywhere in the
    frame (global, exact, chunked). At full resolution each blurry pixel then searches only a
    (2r+1)^2 window (r = `radius` = 2) around its position shifted by the scaled coarse displacement
    and takes the best-matching reference feature vector (hard top-1; indices carry no gradient, the
    gathered features do).
  * Spatial adaptation (SAM): from [F^B, matched] a conv predicts spatial maps gamma, beta; the matched
    features are renormalised to the blurry features' per-channel statistics,
    (matched - mean_m) / std_m * (std_B + gamma) + (mean_B + beta).
  * Fusion with F^B by a 1x1 conv, as ALM does.
Inputs are replicate-padded to a multiple of `scale` internally and cropped back. Simplifications
against MASA-SR: a single scale instead of its three-level encoder, no dual residual aggregation module
(the AsLeD-Net fusion and decoder follow instead); gamma / beta convs start at zero (pure statistics
transfer at initialisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv1x1, conv3x3, pad_to_multiple, zero_init
from asled.models.deformable_attention import global_match_displacement


@torch.no_grad()
def coarse_to_fine_indices(
    f_blur: torch.Tensor, f_ref: torch.Tensor, scale: int = 4, radius: int = 2, chunk_size: int = 4096
) -> torch.Tensor:
    """Flat reference index `[N, H*W]` of each blurry position's match (H, W multiples of `scale`)."""
    n, c, h, w = f_blur.shape
    coarse = global_match_displacement(F.avg_pool2d(f_blur, scale), F.avg_pool2d(f_ref, scale), chunk_size)
    coarse = coarse.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3).long() * scale  # [N, 2, H, W]
    ys = torch.arange(h, device=f_blur.device).view(1, h, 1)
    xs = torch.arange(w, device=f_blur.device).view(1, 1, w)
    cy, cx = ys + coarse[:, 1], xs + coarse[:, 0]  # window centres [N, H, W]
    q = F.normalize(f_blur, dim=1).flatten(2)  # [N, C, HW]
    k = F.normalize(f_ref, dim=1).flatten(2)
    best_sim = torch.full((n, h * w), -2.0, device=f_blur.device, dtype=f_blur.dtype)
    best_idx = torch.zeros((n, h * w), device=f_blur.device, dtype=torch.long)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            idx = ((cy + dy).clamp(0, h - 1) * w + (cx + dx).clamp(0, w - 1)).flatten(1)  # [N, HW]
            sim = (q * k.gather(2, idx.unsqueeze(1).expand(n, c, -1))).sum(1)
            better = sim > best_sim
            best_sim = torch.where(better, sim, best_sim)
            best_idx = torch.where(better, idx, best_idx)
    return best_idx


def channel_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel spatial mean and standard deviation, `[N, C, 1, 1]` each."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    std = (x.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


class MASAMatching(nn.Module):
    """`forward(f_blur, f_ref) -> fused`, `[N, C, H, W]`."""

    def __init__(self, channels: int = 64, scale: int = 4, radius: int = 2, chunk_size: int = 4096):
        super().__init__()
        self.scale, self.radius, self.chunk_size = scale, radius, chunk_size
        self.sam_conv = conv3x3(2 * channels, channels)
        self.sam_gamma = zero_init(conv3x3(channels, channels))
        self.sam_beta = zero_init(conv3x3(channels, channels))
        self.fuse = conv1x1(2 * channels, channels)

    def forward(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        n, c, h, w = f_blur.shape
        fb, _ = pad_to_multiple(f_blur, self.scale)
        fr, _ = pad_to_multiple(f_ref, self.scale)
        idx = coarse_to_fine_indices(fb, fr, self.scale, self.radius, self.chunk_size)
        matched = fr.flatten(2).gather(2, idx.unsqueeze(1).expand(n, c, -1)).view_as(fr)[..., :h, :w]
        hidden = F.leaky_relu(self.sam_conv(torch.cat([f_blur, matched], dim=1)), 0.1)
        gamma, beta = self.sam_gamma(hidden), self.sam_beta(hidden)
        m_mean, m_std = channel_stats(matched)
        b_mean, b_std = channel_stats(f_blur)
        adapted = (matched - m_mean) / m_std * (b_std + gamma) + (b_mean + beta)
        return self.fuse(torch.cat([f_blur, adapted], dim=1))
