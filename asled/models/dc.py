"""DC: difference compensation of AsLeD-Net.

A cascade conv -> ReLU -> residual blocks predicts e_t, the difference between the (sharp, reference-
guided) feature the blurry frame should have and the blurry feature F^B_t it has; the module returns
the compensated feature F^B_t + e_t. Its input is [F^B_t, F^ref_t]; `use_ref=False` drops F^ref_t
(supplement ablation (j)).

What F^ref_t is, is a reading of the paper's prose ("the difference between the blurry and the
reference features"); AsLeD-Net chooses it with its `dc_input` kwarg and passes it in:
  * "alm": the reference-guided feature F^ALM_t (ALM's output), the first reading;
  * "ref": the reference encoder's own feature F^Ref_t at the same time step (position-aligned up to
    the lenses' parallax), the literal "reference features".
This module only sees the tensor, so both readings share its code and parameter count.
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
        """f_blur = F^B_t; f_ref_guided = F^ref_t (F^ALM_t or F^Ref_t, see the module docstring)."""
        x = torch.cat([f_blur, f_ref_guided], dim=1) if self.use_ref else f_blur
        difference = self.blocks(F.relu(self.conv(x)))
        return f_blur + difference
