"""Channel attention (RCAN's CA layer) and the "concat + channel attention" fusion of the ablations.

Supplementary Table 1 rows (b) and (i) replace ALM and DC, respectively, by "concat + channel
attention". Our reading: concatenate the slot's two inputs along channels, re-weight the concatenated
channels by a squeeze-excitation gate (RCAN, Zhang et al. ECCV 2018: global average pool -> 1x1 conv
down by `reduction` -> ReLU -> 1x1 conv up -> sigmoid), and project back to `channels` with a 1x1
conv. The gate lets the network choose, per channel and per frame, between blurry and reference
evidence; there is no spatial matching. Works for any H, W.
"""

from __future__ import annotations

import torch
from torch import nn

from asled.models.blocks import conv1x1


class ChannelAttention(nn.Module):
    """RCAN's CA layer: `x * sigmoid(W_up relu(W_down avgpool(x)))`."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ConcatChannelAttention(nn.Module):
    """`forward(a, b) -> conv1x1(CA([a, b]))`: concat + channel attention, `[N, C, H, W]` each."""

    def __init__(self, channels: int = 64, reduction: int = 16):
        super().__init__()
        self.attention = ChannelAttention(2 * channels, reduction)
        self.project = conv1x1(2 * channels, channels)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.project(self.attention(torch.cat([a, b], dim=1)))
