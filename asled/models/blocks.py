"""Building blocks shared by AsLeD-Net and the baselines: convs, residual blocks, flow warping.

Conventions: feature maps are `[N, C, H, W]`; optical flow is `[N, 2, H, W]` in pixels, channel 0 the
horizontal (x) and channel 1 the vertical (y) displacement, and `flow_warp(x, flow)` samples `x` at
`p + flow(p)`, i.e. it pulls the frame the flow points *to* back onto the frame it was computed *for*.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1)


def zero_init(conv: nn.Conv2d) -> nn.Conv2d:
    """Zero a conv so a branch that ends with it starts as a no-op (a zero flow, a zero residual)."""
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class ResidualBlock(nn.Module):
    """conv-ReLU-conv plus identity, no normalisation (EDSR / BasicVSR style); `negative_slope > 0`
    makes the activation LeakyReLU(negative_slope) (DSTNet's own `ResidualBlockNoBN`: slope 0.1)."""

    def __init__(self, channels: int = 64, negative_slope: float = 0.0):
        super().__init__()
        self.negative_slope = negative_slope
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)
        # Deep stacks (30+ blocks in a row) of unit-gain residual branches blow up activations at
        # initialisation; scaling the Kaiming init by 0.1 keeps every block close to identity at first.
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In place is safe: conv1's backward needs its input, not its output, and saves a full-size copy
        # (in-place LeakyReLU's backward reads its output, which works for a positive slope).
        y = self.conv1(x)
        y = F.leaky_relu(y, self.negative_slope, inplace=True) if self.negative_slope else F.relu(y, inplace=True)
        return x + self.conv2(y)


class LeakyResidualBlock(nn.Module):
    """conv-LeakyReLU(slope)-conv plus identity with PyTorch's default init: the residual block of
    several baselines (DSTNet's kernel predictor, slope 0.1; RefVSR's ResBlock, slope 0.2)."""

    def __init__(self, channels: int, slope: float = 0.1):
        super().__init__()
        self.slope = slope
        self.conv1 = conv3x3(channels, channels)
        self.conv2 = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), self.slope))


def residual_stack(num_blocks: int, channels: int = 64) -> nn.Module:
    """`num_blocks` residual blocks in sequence (an identity when zero)."""
    if num_blocks <= 0:
        return nn.Identity()
    return nn.Sequential(*(ResidualBlock(channels) for _ in range(num_blocks)))


def residual_block_params(channels: int = 64) -> int:
    """Parameter count of one `ResidualBlock`, for sizing parameter-matched stand-ins."""
    return 2 * (channels * channels * 9 + channels)


class ConvResidualBlocks(nn.Module):
    """conv3x3 + LeakyReLU(0.1) to change width, then residual blocks (BasicVSR's propagation trunk)."""

    def __init__(self, in_channels: int, out_channels: int = 64, num_blocks: int = 1):
        super().__init__()
        self.conv = conv3x3(in_channels, out_channels)
        self.blocks = residual_stack(num_blocks, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = match_memory_format(x, self.conv.weight)
        return self.blocks(F.leaky_relu(self.conv(x), 0.1, inplace=True))


def match_memory_format(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Give `x` the weight's layout: a model moved to channels_last (about 1.5x faster convs on CPU)
    only profits if activations are channels_last too, and concatenation or grid_sample can drop it."""
    if weight.dim() == 4 and weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def flow_warp(
    x: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros"
) -> torch.Tensor:
    """Sample `x` ([N, C, H, W]) at pixel positions shifted by `flow` ([N, 2, H, W])."""
    if x.shape[-2:] != flow.shape[-2:] or flow.shape[1] != 2:
        raise ValueError(f"flow_warp: x {tuple(x.shape)} and flow {tuple(flow.shape)} do not match")
    n, _, h, w = x.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=flow.dtype, device=flow.device),
        torch.arange(w, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    gx = xs + flow[:, 0]
    gy = ys + flow[:, 1]
    # grid_sample wants [-1, 1] coordinates; with align_corners=True, -1 and 1 are pixel centres 0 and w-1.
    gx = 2.0 * gx / max(w - 1, 1) - 1.0
    gy = 2.0 * gy / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=3)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def pad_to_multiple(x: torch.Tensor, multiple: int, mode: str = "replicate") -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims of `x` at the bottom/right up to a multiple; returns (padded, (h, w)) to crop back."""
    h, w = x.shape[-2:]
    ph = math.ceil(h / multiple) * multiple - h
    pw = math.ceil(w / multiple) * multiple - w
    if ph or pw:
        lead = x.shape[:-3]
        x = F.pad(x.reshape(-1, *x.shape[-3:]), (0, pw, 0, ph), mode=mode).reshape(*lead, x.shape[-3], h + ph, w + pw)
    return x, (h, w)


def register_imagenet_stats(module: nn.Module) -> None:
    """Non-persistent `mean` / `std` buffers [1, 3, 1, 1] of ImageNet, which pretrained trunks (SPyNet, VGG)
    expect their RGB [0, 1] inputs normalised by."""
    module.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
    module.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
