"""Pieces shared by the recurrent, flow-guided baselines (BasicVSR, BasicVSR++, RefVSR).

BasicVSR's own bidirectional propagation is AsLeD-Net's base branch
(`asled.models.asled_net.BidirectionalPropagation`), reused as is; what the other recurrent baselines
share with it lives here: the flows between neighbouring frames, in BasicVSR's convention, a
trainable-or-frozen SPyNet built without network access, and mmagic's pixel-shuffle x2 stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import ConfigError
from asled.models.blocks import conv3x3
from asled.models.spynet import SPyNet


def adjacent_flows(frames: torch.Tensor, flow_net: nn.Module) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Flows between neighbouring frames of `[B, T, 3, H, W]` clips, both `[B, T-1, 2, H, W]`.

    `to_earlier[:, i]` pulls frame i+1 onto frame i (used when propagating backward in time, from
    step i+1 to step i); `to_later[:, i]` pulls frame i onto frame i+1 (forward propagation, step
    i -> i+1). Both directions go through the flow net in one batch. `(None, None)` when T == 1.
    """
    b, t, _, h, w = frames.shape
    if t < 2:
        return None, None
    earlier, later = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
    flows = flow_net(torch.cat([earlier, later]), torch.cat([later, earlier]))
    to_earlier, to_later = flows.view(2, b, t - 1, 2, h, w).unbind(0)
    return to_earlier, to_later


def build_spynet(weights: str | None, freeze: bool) -> SPyNet:
    """SPyNet from random init or a local checkpoint. The paper recipe (`spynet: pretrained`,
    asled/flow_recipe.py) passes the staged mmagic SPyNet as `weights`, and the trainer then keeps it frozen
    for `flow_freeze_iterations` and trains it at `flow_lr_mul` x lr (BasicVSR's recipe). `freeze` keeps it
    out of training altogether (as the official RefVSR does with its pretrained SPyNet). Freezing a randomly
    initialised SPyNet would pin the flow at zero, so it is refused."""
    if freeze and not weights:
        raise ConfigError(
            "freeze_spynet=True needs spynet_weights (a local SPyNet checkpoint under data/weights/, e.g. the "
            "recipe's `spynet: pretrained` after `asled weights fetch --only spynet`): a frozen randomly "
            "initialised SPyNet predicts zero flow forever. Set spynet_weights, or freeze_spynet: false."
        )
    net = SPyNet(weights)
    if freeze:
        net.requires_grad_(False)
    return net


class PixelShuffleUp(nn.Module):
    """conv C -> 4C then pixel shuffle x2 (mmagic's `PixelShufflePack` with scale 2, kernel 3)."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.conv = conv3x3(channels, 4 * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)
