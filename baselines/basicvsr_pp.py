"""BasicVSR++ (Chan et al., CVPR 2022) as mmagic / BasicSR `BasicVSRPlusPlus` computes it.

Two configurations of one class (catalogue `basicvsr_pp` and `basicvsr_pp_deblur`):

  * `is_low_res_input=True` (default, the paper's configuration): the official super-resolution layout
    (features and flows at the input resolution) with its upsampler replaced by convolutions, as the
    AsLeD-Net paper did for its SR baselines: each conv + pixel-shuffle x2 stage becomes a 3x3 conv
    C -> C, and the global residual is the input frame instead of its bilinear x4 upsampling. At 64
    channels and 15 blocks per branch: 9,464,751 parameters, the paper's 9.5 M;
  * `is_low_res_input=False`: the authors' deblurring model (BasicVSR_PlusPlus
    `basicvsr_plusplus_deblur_{dvd,gopro}.py`: 64 channels, 15 blocks), 9,760,175 parameters. Two
    stride-2 convs take the features to 1/4 scale (flows on the clip bicubically downsampled x4), and
    the pixel-shuffle stages only return to the input size, so they are kept. Inputs are
    replicate-padded to a multiple of 4 and cropped back.

Data flow for a clip of T frames:

  * features: conv + 5 residual blocks (after the two stride-2 convs in the deblurring layout);
  * SPyNet flows between neighbouring frames, at the feature resolution;
  * second-order grid propagation: four branches in turn (backward_1, forward_1, backward_2,
    forward_2); at each step a branch aligns its states from steps n-1 and n-2 to the current frame
    with flow-guided deformable alignment and updates the state with conv + `num_blocks` residual
    blocks on [spatial feature, the earlier branches' features of this frame, aligned state];
  * flow-guided deformable alignment: the n-1 and n-2 states are pre-warped with their flows (the n-2
    flow is composed through n-1); a conv net on [warped n-1, current feature, warped n-2, both flows]
    predicts offset residuals (bounded by 10 * tanh) added to the flows and sigmoid masks for a
    modulated 3x3 deformable conv (16 deformable groups) over the unwarped [n-1, n-2] states. The last
    offset conv is zero-initialised, so alignment starts as plain flow warping;
  * reconstruction: conv + 5 residual blocks on all five feature sets, two upsampling stages (or their
    conv stand-ins), conv_hr, conv_last, plus the input frame.

Deformable convolution is `torchvision.ops.deform_conv2d` on every device: unlike a public port that
skips alignment without CUDA, the architecture never depends on the device. The official head is 64
channels wide whatever `mid_channels` is; here it follows `mid_channels` (the same at 64; only the
reduced demo scale differs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import deform_conv2d

from asled.models.blocks import (
    ConvResidualBlocks,
    conv3x3,
    flow_warp,
    pad_to_multiple,
    zero_init,
)
from baselines._propagation import PixelShuffleUp, adjacent_flows, build_spynet

BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class SecondOrderDeformableAlignment(nn.Module):
    """Modulated deformable conv aligning [state n-1, state n-2] (2C channels) onto the current frame (C)."""

    def __init__(self, channels: int = 64, groups: int = 16, kernel_size: int = 3, max_residue: float = 10.0):
        super().__init__()
        self.kernel_size = kernel_size
        self.max_residue = max_residue
        c = channels
        self.conv_offset = nn.Sequential(
            nn.Conv2d(3 * c + 4, c, 3, padding=1),
            nn.LeakyReLU(0.1),
            conv3x3(c, c),
            nn.LeakyReLU(0.1),
            conv3x3(c, c),
            nn.LeakyReLU(0.1),
            zero_init(nn.Conv2d(c, 3 * groups * kernel_size**2, 3, padding=1)),
        )
        self.weight = nn.Parameter(torch.empty(c, 2 * c, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(c))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(self, states: torch.Tensor, cond: torch.Tensor, flow_1: torch.Tensor, flow_2: torch.Tensor) -> torch.Tensor:
        """states [N, 2C, h, w] (unwarped n-1, n-2); cond [N, 3C, h, w]; flows [N, 2, h, w] (x, y)."""
        o1, o2, mask = torch.chunk(self.conv_offset(torch.cat([cond, flow_1, flow_2], dim=1)), 3, dim=1)
        offset = self.max_residue * torch.tanh(torch.cat([o1, o2], dim=1))
        off_1, off_2 = torch.chunk(offset, 2, dim=1)
        # deform_conv2d offsets are (dy, dx) per kernel tap and group; the first half of the groups
        # reads state n-1 (channels 0..C-1), the second half state n-2.
        reps = off_1.shape[1] // 2
        off_1 = off_1 + flow_1.flip(1).repeat(1, reps, 1, 1)
        off_2 = off_2 + flow_2.flip(1).repeat(1, reps, 1, 1)
        return deform_conv2d(
            states.contiguous(),
            torch.cat([off_1, off_2], dim=1).contiguous(),
            self.weight,
            self.bias,
            padding=self.kernel_size // 2,
            mask=torch.sigmoid(mask).contiguous(),
        )


class BasicVSRPlusPlus(nn.Module):
    """`forward(blur, ref) -> restored` on `[B, T, 3, H, W]`; the reference is ignored."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("conv_last",)

    uses_reference = False

    def __init__(
        self,
        mid_channels: int = 64,
        num_blocks: int = 15,
        deform_groups: int = 16,
        max_residue_magnitude: float = 10.0,
        spynet_weights: str | None = None,
        freeze_spynet: bool = False,
        is_low_res_input: bool = True,
    ):
        super().__init__()
        c = mid_channels
        self.is_low_res_input = is_low_res_input
        self.scale = 1 if is_low_res_input else 4  # input pixels per feature pixel (each side)
        self.spynet = build_spynet(spynet_weights, freeze_spynet)
        if is_low_res_input:
            self.feat_extract = ConvResidualBlocks(3, c, 5)
        else:
            self.feat_extract = nn.Sequential(
                nn.Conv2d(3, c, 3, stride=2, padding=1),
                nn.LeakyReLU(0.1),
                nn.Conv2d(c, c, 3, stride=2, padding=1),
                nn.LeakyReLU(0.1),
                ConvResidualBlocks(c, c, 5),
            )
        self.deform_align = nn.ModuleDict(
            {name: SecondOrderDeformableAlignment(c, deform_groups, 3, max_residue_magnitude) for name in BRANCHES}
        )
        self.backbone = nn.ModuleDict(
            {name: ConvResidualBlocks((2 + i) * c, c, num_blocks) for i, name in enumerate(BRANCHES)}
        )
        self.reconstruction = ConvResidualBlocks(5 * c, c, 5)
        # SR layout: the x2 upsamplers become same-resolution convs (the paper's "upsampler -> conv").
        self.upsample1 = conv3x3(c, c) if is_low_res_input else PixelShuffleUp(c)
        self.upsample2 = conv3x3(c, c) if is_low_res_input else PixelShuffleUp(c)
        self.conv_hr = conv3x3(c, c)
        self.conv_last = conv3x3(c, 3)

    def propagate(self, feats: dict[str, list[torch.Tensor]], flows: torch.Tensor | None, name: str) -> None:
        """Run branch `name` over the clip; appends its per-frame states (in time order) to `feats`."""
        t = len(feats["spatial"])
        backward = name.startswith("backward")
        order = list(range(t - 1, -1, -1)) if backward else list(range(t))
        earlier = [feats[k] for k in BRANCHES if k in feats and k != name]  # branches already run
        states: list[torch.Tensor] = []
        state = feats["spatial"][0].new_zeros(feats["spatial"][0].shape)
        for step, idx in enumerate(order):
            current = feats["spatial"][idx]
            if step > 0:
                # flows[:, j] links frames j and j+1: the previous step's frame is idx+1 (backward) or idx-1.
                flow_1 = flows[:, idx] if backward else flows[:, idx - 1]
                cond_1 = flow_warp(state, flow_1)
                state_2, flow_2, cond_2 = torch.zeros_like(state), torch.zeros_like(flow_1), torch.zeros_like(cond_1)
                if step > 1:
                    state_2 = states[-2]
                    flow_prev = flows[:, idx + 1] if backward else flows[:, idx - 2]
                    flow_2 = flow_1 + flow_warp(flow_prev, flow_1)  # n-2 -> n composed through n-1
                    cond_2 = flow_warp(state_2, flow_2)
                cond = torch.cat([cond_1, current, cond_2], dim=1)
                state = self.deform_align[name](torch.cat([state, state_2], dim=1), cond, flow_1, flow_2)
            inputs = [current] + [f[idx] for f in earlier] + [state]
            state = state + self.backbone[name](torch.cat(inputs, dim=1))
            states.append(state)
        feats[name] = states[::-1] if backward else states

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"BasicVSRPlusPlus expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        b, t, _, h, w = blur.shape
        s = self.scale
        x, _ = pad_to_multiple(blur, s)
        hp, wp = x.shape[-2:]
        small = x
        if s > 1:  # deblurring layout: flows at the 1/4-scale feature resolution
            small = F.interpolate(x.flatten(0, 1), scale_factor=1 / s, mode="bicubic", align_corners=False)
            small = small.view(b, t, 3, hp // s, wp // s)
        to_earlier, to_later = adjacent_flows(small, self.spynet)
        spatial = self.feat_extract(x.flatten(0, 1)).view(b, t, -1, hp // s, wp // s)
        feats: dict[str, list[torch.Tensor]] = {"spatial": list(spatial.unbind(1))}
        for name in BRANCHES:
            self.propagate(feats, to_earlier if name.startswith("backward") else to_later, name)
        merged = torch.stack([torch.cat([feats[k][i] for k in ("spatial", *BRANCHES)], dim=1) for i in range(t)], dim=1)
        y = self.reconstruction(merged.flatten(0, 1))
        y = lrelu(self.upsample1(y))
        y = lrelu(self.upsample2(y))
        y = lrelu(self.conv_hr(y))
        y = self.conv_last(y).view(b, t, 3, hp, wp)
        return blur + y[..., :h, :w]
