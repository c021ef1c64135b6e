"""BasicVSR (Chan et al., CVPR 2021), as configured in BasicSR's `BasicVSR` / mmagic's `BasicVSRNet`.

Architecture (64 channels, 30 residual blocks per direction, SPyNet flow):
  * SPyNet flows between neighbouring frames; backward then forward recurrence, each step warping the
    hidden state to the current frame and updating it with conv(3+64 -> 64) + LeakyReLU + 30
    residual blocks (conv-ReLU-conv); per frame the two directions are merged by a 1x1 conv + LeakyReLU.
    This is exactly AsLeD-Net's base branch, so the module is reused from `asled.models.asled_net`.
  * Reconstruction: two upsampling stages (conv 64 -> 256 + pixel shuffle x2, LeakyReLU), conv_hr
    (64 -> 64) + LeakyReLU, conv_last (64 -> 3), plus the bilinearly upsampled input.

Adaptation for same-resolution deblurring (as the AsLeD-Net paper did for its SR baselines): each
upsampling stage (conv 64 -> 4*64 + pixel shuffle) becomes a 3x3 conv 64 -> 64 at the input resolution
(LeakyReLU kept), and the global residual is the blurry input frame itself. The recurrence over the whole
clip is unchanged. 6.07 M parameters (official SR model 6.29 M; paper's Table 1: 6.2 M).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.asled_net import BidirectionalPropagation
from asled.models.blocks import conv3x3
from baselines._propagation import build_spynet


class BasicVSR(nn.Module):
    """`forward(blur, ref) -> restored` on `[B, T, 3, H, W]`; the reference is ignored."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("conv_last",)

    uses_reference = False

    def __init__(
        self,
        mid_channels: int = 64,
        num_blocks: int = 30,
        spynet_weights: str | None = None,
        freeze_spynet: bool = False,
        channels_last: bool = True,
    ):
        super().__init__()
        c = mid_channels
        self.spynet = build_spynet(spynet_weights, freeze_spynet)
        self.propagation = BidirectionalPropagation(c, num_blocks)
        # Stand-ins for BasicSR's upconv1 / upconv2 (conv to 4c + pixel shuffle): same depth, no upsampling.
        self.upconv1 = conv3x3(c, c)
        self.upconv2 = conv3x3(c, c)
        self.conv_hr = conv3x3(c, c)
        self.conv_last = conv3x3(c, 3)
        if channels_last:
            # Same numbers up to float rounding; ~1.5x faster 3x3 convs on CPU (see AsLeDNet).
            self.to(memory_format=torch.channels_last)

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"BasicVSR expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        b, t, _, h, w = blur.shape
        x = self.propagation(blur, self.spynet)  # [B*T, C, H, W], already fused + LeakyReLU
        for conv in (self.upconv1, self.upconv2, self.conv_hr):
            x = F.leaky_relu(conv(x), 0.1, inplace=True)
        return blur + self.conv_last(x).view(b, t, 3, h, w)
