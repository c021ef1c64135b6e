"""RMC: reference motion compensation of AsLeD-Net.

For each time step t and each neighbour n in {t-1, t+1} (clamped at the clip ends, so the first and
last frames use their own reference frame once):
  1. SPyNet estimates an initial flow from the blurry frame I^B_t to the reference frame I^Ref_n;
  2. a small net of residual blocks on [I^B_t, initial flow] predicts a flow correction (no flow
     supervision; its last conv is zero-initialised, so refinement starts as a no-op);
  3. the reference feature F^Ref_n is warped onto frame t with the refined flow.
The two warped features and F^B_t are merged by a 1x1 conv and added to F^B_t as a residual.

The flow network is passed to `forward` rather than owned, because AsLeD-Net shares one SPyNet
between its base branch and RMC (see docs/model_card_asled_net.md).
Ablations: `refine=False` uses the SPyNet flow as is (supp. (l)); `warp=False` merges the neighbours'
features unwarped and computes no flow (supp. (m)).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv1x1, conv3x3, flow_warp, residual_stack, zero_init


class FlowRefiner(nn.Module):
    """[image, flow] -> refined flow = flow + predicted correction."""

    def __init__(self, channels: int = 64, num_blocks: int = 1):
        super().__init__()
        self.conv_in = conv3x3(3 + 2, channels)
        self.blocks = residual_stack(num_blocks, channels)
        self.conv_out = zero_init(conv3x3(channels, 2))

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv_in(torch.cat([image, flow], dim=1)), 0.1)
        return flow + self.conv_out(self.blocks(x))


class ReferenceMotionCompensation(nn.Module):
    def __init__(self, channels: int = 64, refine_blocks: int = 1, refine: bool = True, warp: bool = True):
        super().__init__()
        self.warp = warp
        self.refiner = FlowRefiner(channels, refine_blocks) if (refine and warp) else None
        self.merge = conv1x1(3 * channels, channels)

    def forward(
        self,
        blur: torch.Tensor,
        ref: torch.Tensor,
        f_blur: torch.Tensor,
        f_ref: torch.Tensor,
        flow_net: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """blur, ref `[B, T, 3, H, W]`; f_blur, f_ref `[B, T, C, H, W]`; returns F^RMC `[B, T, C, H, W]`."""
        b, t, c, h, w = f_blur.shape
        prev_idx = [max(i - 1, 0) for i in range(t)]
        next_idx = [min(i + 1, t - 1) for i in range(t)]
        # Both neighbours of every frame in one batch: [prev of 0..T-1, next of 0..T-1] along dim 1.
        neigh = prev_idx + next_idx
        neigh_feat = f_ref[:, neigh].flatten(0, 1)  # [B*2T, C, H, W]
        if self.warp:
            if flow_net is None:
                raise ValueError("RMC with warping needs a flow network")
            image_t = blur.repeat(1, 2, 1, 1, 1).flatten(0, 1)  # I^B_t for each of the 2T pairs
            flow = flow_net(image_t, ref[:, neigh].flatten(0, 1))
            if self.refiner is not None:
                flow = self.refiner(image_t, flow)
            neigh_feat = flow_warp(neigh_feat, flow)
        neigh_feat = neigh_feat.view(b, 2, t, c, h, w)
        merged = self.merge(
            torch.cat([neigh_feat[:, 0].flatten(0, 1), neigh_feat[:, 1].flatten(0, 1), f_blur.flatten(0, 1)], dim=1)
        )
        return f_blur + merged.view(b, t, c, h, w)
