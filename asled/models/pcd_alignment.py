"""EDVR-style PCD alignment: the RMC replacement of Supplementary Table 1, row (o).

EDVR (Wang et al., CVPRW 2019) aligns a neighbouring frame's features to the reference frame's with
Pyramid, Cascading and Deformable convolutions. Here, as RMC does, each blurry frame t is the anchor and
the reference-lens features of its neighbours t-1 and t+1 (clamped at clip ends) are aligned to it:

  * pyramid: level 1 = the 64-channel features, levels 2 and 3 = stride-2 conv + conv (LeakyReLU)
    applied twice (one extractor shared by anchor and neighbours, as in EDVR);
  * from the coarsest level up, offsets are predicted by convs on [neighbour, anchor] (plus the 2x
    upsampled offset features of the coarser level), a modulated deformable conv (DCNv2: offsets and
    sigmoid masks from a zero-initialised conv, 8 deformable groups) aligns the neighbour, and the
    aligned features are merged with the coarser level's upsampled result;
  * cascading: one more deformable conv at level 1 with offsets from [aligned, anchor].
Layer shapes follow BasicSR's `PCDAlignment` (num_feat 64, deformable_groups 8); deformable convs use
`torchvision.ops.deform_conv2d` (no custom CUDA; runs on CPU). The two aligned neighbours and F^B_t are
merged by a 1x1 conv and added to F^B_t, exactly as RMC combines its warped features, so (o) differs
from the full model only in how the neighbours are aligned. Inputs are replicate-padded to a multiple
of 2^(levels-1) and cropped back, so any H, W work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from asled.models.blocks import conv1x1, conv3x3, pad_to_multiple, zero_init


def neighbour_indices(t: int) -> list[int]:
    """[t-1 for every frame] + [t+1 for every frame], clamped to the clip (as RMC)."""
    return [max(i - 1, 0) for i in range(t)] + [min(i + 1, t - 1) for i in range(t)]


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class DCNv2Pack(nn.Module):
    """Modulated deformable 3x3 conv whose offsets and masks come from a separate feature map."""

    def __init__(self, channels: int = 64, groups: int = 8, kernel_size: int = 3):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv_offset = zero_init(
            nn.Conv2d(channels, 3 * groups * kernel_size**2, kernel_size, padding=kernel_size // 2)
        )
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, x: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
        o1, o2, mask = torch.chunk(self.conv_offset(feat), 3, dim=1)
        offset = torch.cat([o1, o2], dim=1).contiguous()
        return deform_conv2d(
            x.contiguous(),
            offset,
            self.weight,
            self.bias,
            padding=self.kernel_size // 2,
            mask=torch.sigmoid(mask).contiguous(),
        )


class PCDAlignment(nn.Module):
    """`forward(neighbour_pyramid, anchor_pyramid) -> aligned neighbour` (level-1 resolution)."""

    def __init__(self, channels: int = 64, groups: int = 8, levels: int = 3):
        super().__init__()
        self.levels = levels
        c = channels
        self.offset_conv1 = nn.ModuleList(conv3x3(2 * c, c) for _ in range(levels))
        self.offset_conv2 = nn.ModuleList(conv3x3(c if i == levels - 1 else 2 * c, c) for i in range(levels))
        self.offset_conv3 = nn.ModuleList(conv3x3(c, c) for _ in range(levels - 1))
        self.dcn = nn.ModuleList(DCNv2Pack(c, groups) for _ in range(levels))
        self.feat_conv = nn.ModuleList(conv3x3(2 * c, c) for _ in range(levels - 1))
        self.cas_offset_conv1 = conv3x3(2 * c, c)
        self.cas_offset_conv2 = conv3x3(c, c)
        self.cas_dcn = DCNv2Pack(c, groups)

    def forward(self, neighbour: list[torch.Tensor], anchor: list[torch.Tensor]) -> torch.Tensor:
        up_offset = up_feat = None
        for i in range(self.levels - 1, -1, -1):  # coarsest (index levels-1) to finest (0)
            offset = lrelu(self.offset_conv1[i](torch.cat([neighbour[i], anchor[i]], dim=1)))
            if i == self.levels - 1:
                offset = lrelu(self.offset_conv2[i](offset))
            else:
                offset = lrelu(self.offset_conv2[i](torch.cat([offset, up_offset], dim=1)))
                offset = lrelu(self.offset_conv3[i](offset))
            feat = self.dcn[i](neighbour[i], offset)
            if i < self.levels - 1:
                feat = self.feat_conv[i](torch.cat([feat, up_feat], dim=1))
            if i > 0:
                feat = lrelu(feat)
                up_offset = F.interpolate(offset, scale_factor=2, mode="bilinear", align_corners=False) * 2
                up_feat = F.interpolate(feat, scale_factor=2, mode="bilinear", align_corners=False)
        offset = lrelu(self.cas_offset_conv2(lrelu(self.cas_offset_conv1(torch.cat([feat, anchor[0]], dim=1)))))
        return lrelu(self.cas_dcn(feat, offset))


class PCDMotionCompensation(nn.Module):
    """RMC slot with PCD alignment: same call as `ReferenceMotionCompensation` (images and flow net unused)."""

    def __init__(self, channels: int = 64, groups: int = 8, levels: int = 3):
        super().__init__()
        self.levels = levels
        self.pyramid = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, stride=2, padding=1),
                nn.LeakyReLU(0.1),
                conv3x3(channels, channels),
                nn.LeakyReLU(0.1),
            )
            for _ in range(levels - 1)
        )
        self.align = PCDAlignment(channels, groups, levels)
        self.merge = conv1x1(3 * channels, channels)

    def build_pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        levels = [x]
        for down in self.pyramid:
            levels.append(down(levels[-1]))
        return levels

    def forward(self, blur, ref, f_blur: torch.Tensor, f_ref: torch.Tensor, flow_net=None) -> torch.Tensor:
        """f_blur, f_ref `[B, T, C, H, W]` -> `[B, T, C, H, W]`."""
        b, t, c, h, w = f_blur.shape
        neigh = f_ref[:, neighbour_indices(t)].flatten(0, 1)  # [B*2T, C, H, W]
        anchor = f_blur.repeat(1, 2, 1, 1, 1).flatten(0, 1)
        multiple = 2 ** (self.levels - 1)
        neigh_p, _ = pad_to_multiple(neigh, multiple)
        anchor_p, _ = pad_to_multiple(anchor, multiple)
        aligned = self.align(self.build_pyramid(neigh_p), self.build_pyramid(anchor_p))[..., :h, :w]
        aligned = aligned.reshape(b, 2, t, c, h, w)
        merged = self.merge(
            torch.cat([aligned[:, 0].flatten(0, 1), aligned[:, 1].flatten(0, 1), f_blur.flatten(0, 1)], dim=1)
        )
        return f_blur + merged.view(b, t, c, h, w)
