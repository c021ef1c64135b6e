"""DC: difference compensation of AsLeD-Net.

A cascade conv -> ReLU -> residual blocks predicts e_t, the difference between the (sharp, reference-
guided) feature the blurry frame should have and the blurry feature F^B_t it has; the module returns
the compensated feature F^B_t + e_t. Its input is [F^B_t, F^ref_t], F^ref_t being the reference-guided
feature (the ALM output); `use_ref=False` drops F^ref_t (supplement ablation (j)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv3x3, residual_stack


class DifferenceCompensation(nn.Module):
    def __init__(self, channels: int = 64, num_blocks: int = 1, use_ref: bool = True):
        super().__init__()
        self.use_ref = use_ref
        self.conv = conv3x3(2 * channels if use_ref else channels, channels)
        self.blocks = residual_stack(num_blocks, channels)

    def forward(self, f_blur: torch.Tensor, f_ref_guided: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([f_blur, f_ref_guided], dim=1) if self.use_ref else f_blur
        difference = self.blocks(F.relu(self.conv(x)))
        return f_blur + difference
