"""DAT-style deformable attention: the ALM replacement of Supplementary Table 1, row (f).

After DATSR's texture transformer (Cao et al., ECCV 2022, "Reference-based Image Super-Resolution with
Deformable Attention Transformer"), reduced to one scale and written with `torchvision.ops` only (no
custom CUDA; runs on CPU, any H, W):

  1. correspondence: for every blurry feature vector, the most similar (cosine) reference feature
     vector anywhere in the frame (top-1, chunked and exact as in ALM; indices carry no gradient);
     this gives an integer displacement d(p) from p to its match;
  2. offsets and attention weights: a small conv net on [F^B, F^Ref warped by d] predicts, per
     deformable group (8) and per sampling point (3x3 = 9 around the match), a sub-pixel offset and an
     attention logit; the logits are soft-maxed over the 9 points of a group (positive, sum to 1);
  3. deformable sampling: `deform_conv2d` samples F^Ref at p + d(p) + grid_k + offset_k, weights each
     sample by its attention weight and projects it (value projection per point, summed);
  4. fusion with F^B by a 1x1 conv, as ALM does.
The last conv of the offset net is zero-initialised, so training starts from a 3x3 window of uniform
weights centred on the matched position. Simplifications against DATSR: one scale instead of three,
no multi-head split of the value projection, no Swin-style residual transformer blocks after the
attention (kept modest in size: ~0.25 M parameters at 64 channels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from asled.models.blocks import conv1x1, conv3x3, flow_warp, zero_init


@torch.no_grad()
def global_match_displacement(query: torch.Tensor, key: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Displacement `[N, 2, H, W]` (x, y; pixels) from each query position to its most cosine-similar
    key position (`key` `[N, C, Hk, Wk]` on the same pixel grid; searched globally, exactly)."""
    n, _, h, w = query.shape
    wk = key.shape[-1]
    q = F.normalize(query.flatten(2), dim=1).transpose(1, 2)  # [N, HW, C]
    kn = F.normalize(key.flatten(2), dim=1)  # [N, C, HkWk]
    # Only `chunk_size` query rows against all keys at a time: memory chunk_size x Hk*Wk, not (H*W)^2.
    idx = torch.cat([(q[:, s : s + chunk_size] @ kn).argmax(-1) for s in range(0, h * w, chunk_size)], dim=1)
    pos = torch.arange(h * w, device=query.device)
    dx = (idx % wk) - (pos % w)
    dy = (idx // wk) - (pos // w)
    return torch.stack([dx, dy], dim=1).to(query.dtype).view(n, 2, h, w)


class DeformableAttention(nn.Module):
    """`forward(f_blur, f_ref) -> fused`, `[N, C, H, W]`."""

    def __init__(self, channels: int = 64, groups: int = 8, kernel_size: int = 3, chunk_size: int = 4096):
        super().__init__()
        if channels % groups:
            raise ValueError(f"channels ({channels}) must be divisible by the deformable groups ({groups})")
        self.groups, self.kernel_size, self.chunk_size = groups, kernel_size, chunk_size
        points = kernel_size * kernel_size
        self.offset_conv = conv3x3(2 * channels, channels)
        # Per group and point: (dy, dx) offset + attention logit.
        self.offset_out = zero_init(conv3x3(channels, 3 * groups * points))
        self.value_weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.value_bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.value_weight, a=5**0.5)
        self.fuse = conv1x1(2 * channels, channels)

    def forward(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        n, _, h, w = f_blur.shape
        g, k2 = self.groups, self.kernel_size**2
        disp = global_match_displacement(f_blur, f_ref, self.chunk_size)  # [N, 2 (x, y), H, W]
        warped = flow_warp(f_ref, disp)
        out = self.offset_out(F.leaky_relu(self.offset_conv(torch.cat([f_blur, warped], dim=1)), 0.1))
        offset, logits = out[:, : 2 * g * k2], out[:, 2 * g * k2 :]
        # torchvision's layout: channel 2*(g*K2 + k) is the y offset of point k of group g, +1 the x offset.
        base = disp.flip(1).repeat(1, g * k2, 1, 1)  # (dy, dx) per point
        attention = torch.softmax(logits.reshape(n, g, k2, h, w), dim=2).reshape(n, g * k2, h, w)
        sampled = deform_conv2d(
            f_ref.contiguous(),
            (base + offset).contiguous(),
            self.value_weight,
            self.value_bias,
            padding=self.kernel_size // 2,
            mask=attention.contiguous(),
        )
        return self.fuse(torch.cat([f_blur, sampled], dim=1))
