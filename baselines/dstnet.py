"""DSTNet (Pan, Xu, Dong, Ge & Tang, "Deep Discriminative Spatial and Temporal Network for Efficient
Video Deblurring", CVPR 2023), the efficient recurrent baseline of Table 1 (7.5 M parameters in the
paper; 7.45 M here, as the official model).

Written from the structure of the official code (xuboming8/DSTNet: `deblur_arch.py`, `ChanDynamic_GMLP.py`,
`kpn_channel.py`, `kpn_pixel.py`, `wave_tf.py`) and its GoPro option file (`num_feat: 64, num_block: 15`):

  * per-frame 3x3 conv to 64 channels; a Haar wavelet split halves the resolution into a low band and
    three high bands; the high bands get two grouped 1x1 convs (one group per band, LeakyReLU between);
    a second Haar split gives 1/4 scale, whose high bands get their own two grouped 1x1 convs;
  * at 1/4 scale, 5 channel-wise gated dynamic blocks (CWGDN, "TransformerBlock" in the code): a
    per-pixel channel LayerNorm, then a gated feed-forward whose input/output projections are
    convolutions along time (kernel 3x1x1, 4x hidden width, no bias) and whose gate branch goes
    through a dynamic depthwise 3x3 conv (`ChannelDynamicConv`: kernels predicted per sample from the
    globally pooled features); plus identity;
  * inverse Haar back to 1/2 scale, then wavelet-based feature propagation: a backward recurrence, then
    a forward recurrence over its outputs. Each step is the discriminative temporal feature fusion
    (DTFF): conv on [frame features, propagated state] (128 -> 128, LeakyReLU), both halves gated by
    sigmoid(conv(half)) and summed, a pixel-wise dynamic depthwise conv (`PixelDynamicConv`: a 3x3
    kernel per pixel and channel, predicted at 1/8 of the working scale and upsampled bilinearly),
    then 15 residual blocks (conv-LeakyReLU(0.1)-conv, the official `ResidualBlockNoBN`);
  * inverse Haar with the 1/2-scale high bands back to full resolution, per-frame 3x3 conv to RGB,
    plus the input frame (global residual).

The forward equals the official `Deblur` (checked in float64 against the official code with the same
random non-zero weights: tests/test_official_dstnet_dbn.py and docs/model_card_baselines.md).

Adaptations (none changes the output where the official code runs): the official pixel-wise dynamic
conv is a CuPy CUDA kernel; here it is the same operation in plain PyTorch (`F.unfold` + per-pixel
weighted sum), on any device. The Haar filters are a buffer, not a frozen parameter as in the official
code, so the count is 1,024 lower (7,449,795 vs 7,450,819). The official per-frame `Conv3d` (1x3x3)
layers are `Conv2d` here (weights `[O, I, 1, 3, 3]` -> `[O, I, 3, 3]`). `ref` is ignored; the official
model only accepts sizes that are multiples of 16 (two Haar levels x the dynamic-kernel predictor's 1/8
scale at the propagation level); other sizes are replicate-padded to one and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import LeakyResidualBlock, ResidualBlock, conv3x3, pad_to_multiple

SLOPE = 0.1  # every LeakyReLU of the official model


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, SLOPE)


class Haar(nn.Module):
    """Orthogonal 2x2 Haar transform per channel: `split(x) -> (low [N, C], high [N, 3C])` at half size
    (bands grouped band-major: all channels of band 1, then band 2, band 3); `merge` inverts it exactly."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        w = torch.ones(4, 1, 2, 2)
        w[1, 0, :, 1] = -1  # horizontal detail
        w[2, 0, 1, :] = -1  # vertical detail
        w[3, 0, 1, 0] = w[3, 0, 0, 1] = -1  # diagonal detail
        self.register_buffer("weight", w.repeat(channels, 1, 1, 1), persistent=False)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c, h, w = x.shape
        y = F.conv2d(x, self.weight, stride=2, groups=c) / 4.0  # [N, C*4] channel-major
        y = y.view(n, c, 4, h // 2, w // 2).transpose(1, 2).reshape(n, 4 * c, h // 2, w // 2)
        return y[:, :c], y[:, c:]

    def merge(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        y = torch.cat([low, high], dim=1)
        n, _, h, w = y.shape
        c = self.channels
        y = y.view(n, 4, c, h, w).transpose(1, 2).reshape(n, 4 * c, h, w)
        # The filters are orthogonal with norm 2, so the transpose of (W / 4) times 4 inverts the split.
        return F.conv_transpose2d(y, self.weight, stride=2, groups=c)


class ChannelDynamicConv(nn.Module):
    """Depthwise 3x3 conv whose kernels are predicted per sample (not per pixel) from the input:
    avg-pool 2, 3 depthwise convs, max-pool 2, 3 depthwise convs, global average, 1x1 conv to C*k*k."""

    def __init__(self, channels: int, kernel_size: int = 3):
        super().__init__()
        c, k = channels, kernel_size
        self.kernel_size = k
        self.block1 = nn.Sequential(*(nn.Conv2d(c, c, k, padding=k // 2, groups=c) for _ in range(3)))
        self.block2 = nn.Sequential(*(nn.Conv2d(c, c, k, padding=k // 2, groups=c) for _ in range(3)))
        self.to_kernel = nn.Conv2d(c, c * k * k, 1)
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.kernel_size
        desc = self.block2(F.max_pool2d(self.block1(F.avg_pool2d(x, 2)), 2))
        kernels = self.to_kernel(F.adaptive_avg_pool2d(desc, 1)).view(n * c, 1, k, k)
        # Batch folded into the channels: one grouped conv applies every sample's own kernels.
        y = F.conv2d(x.reshape(1, n * c, h, w), kernels, self.bias.repeat(n), padding=k // 2, groups=n * c)
        return y.view(n, c, h, w)


class PixelDynamicConv(nn.Module):
    """Depthwise 3x3 conv with a kernel per pixel and channel, predicted at 1/(2*down) scale
    (avg-pool `down`, 3 residual blocks, max-pool 2, 3 residual blocks, 1x1 conv) and upsampled."""

    def __init__(self, channels: int, kernel_size: int = 3, down: int = 4):
        super().__init__()
        c, k = channels, kernel_size
        self.kernel_size = k
        self.down = down
        self.block1 = nn.Sequential(*(LeakyResidualBlock(c, SLOPE) for _ in range(3)))
        self.block2 = nn.Sequential(*(LeakyResidualBlock(c, SLOPE) for _ in range(3)))
        self.to_kernel = nn.Conv2d(c, c * k * k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        k = self.kernel_size
        kernels = self.to_kernel(self.block2(F.max_pool2d(self.block1(F.avg_pool2d(x, self.down)), 2)))
        kernels = F.interpolate(kernels, size=(h, w), mode="bilinear", align_corners=False)
        patches = F.unfold(x, k, padding=k // 2).view(n, c, k * k, h, w)
        return (patches * kernels.view(n, c, k * k, h, w)).sum(2)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel of `[N, C, H, W]` (with bias)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class CWGDN(nn.Module):
    """Channel-wise gated dynamic block on a clip `[B, T, C, H, W]`: x + FFN(LayerNorm(x))."""

    def __init__(self, channels: int = 64, expansion: int = 4):
        super().__init__()
        hidden = channels * expansion
        self.norm = ChannelLayerNorm(channels)
        self.project_in = nn.Conv3d(channels, 2 * hidden, (3, 1, 1), padding=(1, 0, 0), bias=False)
        self.dynamic = ChannelDynamicConv(hidden)
        self.project_out = nn.Conv3d(hidden, channels, (3, 1, 1), padding=(1, 0, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        y = self.norm(x.flatten(0, 1)).view(b, t, c, h, w).transpose(1, 2)  # [B, C, T, H, W]
        gate, value = self.project_in(y).chunk(2, dim=1)
        gate = self.dynamic(gate.transpose(1, 2).flatten(0, 1)).view(b, t, -1, h, w).transpose(1, 2)
        y = self.project_out(gate * value)
        return x + y.transpose(1, 2)


class DTFFPropagation(nn.Module):
    """One direction of the recurrent propagation; each step is a DTFF unit + residual blocks."""

    def __init__(self, channels: int = 64, num_blocks: int = 15, reverse: bool = False):
        super().__init__()
        c = channels
        self.reverse = reverse
        self.fuse = conv3x3(2 * c, 2 * c)
        self.gate1 = conv3x3(c, c)
        self.gate2 = conv3x3(c, c)
        self.dynamic = PixelDynamicConv(c)
        # the official ResidualBlockNoBN (DSTNet's arch_util): LeakyReLU(0.1), Kaiming init x 0.1
        self.blocks = nn.Sequential(*(ResidualBlock(c, negative_slope=SLOPE) for _ in range(num_blocks)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = feats.shape
        state = feats.new_zeros(b, c, h, w)
        out = [None] * t
        for i in (range(t - 1, -1, -1) if self.reverse else range(t)):
            a, p = lrelu(self.fuse(torch.cat([feats[:, i], state], dim=1))).chunk(2, dim=1)
            # Discriminative fusion: each half keeps only what its own sigmoid gate lets through.
            state = a * torch.sigmoid(self.gate1(a)) + p * torch.sigmoid(self.gate2(p))
            state = self.blocks(self.dynamic(state))
            out[i] = state
        return torch.stack(out, dim=1)


class DSTNet(nn.Module):
    """`forward(blur, ref=None) -> restored`, `[B, T, 3, H, W]`."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("recons",)

    uses_reference = False

    def __init__(self, num_feat: int = 64, num_block: int = 15, num_cwgdn: int = 5):
        super().__init__()
        c = num_feat
        self.feat_extractor = conv3x3(3, c)
        self.recons = conv3x3(c, 3)
        self.haar = Haar(c)
        self.high1 = nn.ModuleList([nn.Conv2d(3 * c, 3 * c, 1, groups=3) for _ in range(2)])
        self.high2 = nn.ModuleList([nn.Conv2d(3 * c, 3 * c, 1, groups=3) for _ in range(2)])
        self.cwgdn = nn.Sequential(*(CWGDN(c, expansion=4) for _ in range(num_cwgdn)))
        self.backward_propagation = DTFFPropagation(c, num_block, reverse=True)
        self.forward_propagation = DTFFPropagation(c, num_block, reverse=False)

    @staticmethod
    def _high(convs: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        return convs[1](lrelu(convs[0](x)))

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c, h, w = blur.shape
        x, _ = pad_to_multiple(blur, 16)
        hp, wp = x.shape[-2:]
        feat = self.feat_extractor(x.flatten(0, 1))
        low1, high1 = self.haar.split(feat)
        high1 = self._high(self.high1, high1)
        low2, high2 = self.haar.split(low1)
        low2 = self.cwgdn(low2.view(b, t, *low2.shape[1:])).flatten(0, 1)
        high2 = self._high(self.high2, high2)
        low1 = self.haar.merge(low2, high2)
        low1 = low1.view(b, t, *low1.shape[1:])
        low1 = self.forward_propagation(self.backward_propagation(low1)).flatten(0, 1)
        feat = self.haar.merge(low1, high1)
        out = self.recons(feat) + x.flatten(0, 1)
        return out.view(b, t, c, hp, wp)[..., :h, :w]
