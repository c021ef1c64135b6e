"""The paper's "Blur frame" row: the blurry input scored as if it were the restoration."""

from __future__ import annotations

import torch
from torch import nn


class BlurFrame(nn.Module):
    """Returns the blurry clip unchanged. No parameters; the reference is ignored."""

    uses_reference = False

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        return blur
