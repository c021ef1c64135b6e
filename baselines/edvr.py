"""EDVR (Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks",
CVPRW 2019), the alignment-based multi-frame baseline of Table 1 (23.6 M parameters in the paper;
23.60 M here).

Configuration: BasicSR's EDVR-L deblurring option file (`train_EDVRL_deblur.yml`: num_feat 128,
num_frame 5, deformable_groups 8, num_extract_block 5, num_reconstruct_block 40, hr_in true,
with_predeblur true, with_tsa true), the official configuration whose size matches the paper's. The
structure follows BasicSR's `EDVR` (facts only; our own code):

  * pre-deblur module on every frame: 3x3 conv, two stride-2 convs (input -> 1/4 scale), a small
    three-level residual pyramid (1 + 2 blocks at the coarser levels, 5 at the finest); 1x1 conv;
  * feature extraction: 5 residual blocks, then two more pyramid levels (stride-2 conv + conv each);
  * PCD alignment of each of the 5 frames to the centre frame (`asled.models.pcd_alignment.PCDAlignment`,
    reused at 128 channels: pyramid, cascading, modulated deformable convs through
    `torchvision.ops.deform_conv2d`, 8 deformable groups);
  * TSA fusion: temporal attention (sigmoid of the embedded correlation with the centre frame) and a
    two-level spatial attention pyramid, as `TSAFusion` below;
  * reconstruction: 40 residual blocks, then two conv + pixel-shuffle x2 stages, a conv and a conv to
    RGB, plus the centre input frame (global residual).

About the paper's note that super-resolution models had their upsampler replaced by a convolution: in
this deblurring configuration the input is at full resolution and the pre-deblur module works at 1/4
scale, so the two pixel-shuffle stages only return to the input size; the output already has the input
resolution, and replacing them would break the architecture (and its 23.6 M size). They are kept.

Adaptations for the benchmark interface: every frame t of the clip is restored from the window
t-2..t+2. At the clip ends the window is filled as `frame_padding` says (`baselines.dbn.window_indices`):
"replicate" (default) repeats the edge frame, as the official EDVR test options do
(`test_EDVR_L_deblur_REDS.yml`: `padding: replicate`); "reflection" mirrors without repeating it (what
this code did before; also "reflection_circle", "circle"). Per-frame features are computed once
per clip and shared by the windows (the same result as running the network window by window, without
recomputing each frame five times). `ref` is ignored. Inputs are replicate-padded to a multiple of 16
(1/4 scale x two pyramid levels) and cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv3x3, pad_to_multiple, residual_stack
from asled.models.pcd_alignment import PCDAlignment
from baselines.dbn import window_indices


def lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def stride2(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=2, padding=1)


class PredeblurModule(nn.Module):
    """Full-resolution frame -> 1/4-scale features, with a small coarse-to-fine residual pyramid."""

    def __init__(self, channels: int = 128):
        super().__init__()
        c = channels
        self.conv_first = conv3x3(3, c)
        self.down_hr = nn.ModuleList([stride2(c, c), stride2(c, c)])
        self.down_l2 = stride2(c, c)
        self.down_l3 = stride2(c, c)
        self.block_l3 = residual_stack(1, c)
        self.block_l2_1 = residual_stack(1, c)
        self.block_l2_2 = residual_stack(1, c)
        self.blocks_l1_a = residual_stack(2, c)  # before the coarse levels are added back
        self.blocks_l1_b = residual_stack(3, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l1 = lrelu(self.conv_first(x))
        for down in self.down_hr:
            l1 = lrelu(down(l1))
        l2 = lrelu(self.down_l2(l1))
        l3 = lrelu(self.down_l3(l2))
        l2 = self.block_l2_1(l2) + up2(self.block_l3(l3))
        l2 = up2(self.block_l2_2(l2))
        return self.blocks_l1_b(self.blocks_l1_a(l1) + l2)


class TSAFusion(nn.Module):
    """Temporal + spatial attention fusion of `[B, N, C, H, W]` aligned features -> `[B, C, H, W]`."""

    def __init__(self, channels: int = 128, num_frames: int = 5, center: int = 2):
        super().__init__()
        c, n = channels, num_frames
        self.center = center
        self.temporal_ref = conv3x3(c, c)
        self.temporal_nbr = conv3x3(c, c)
        self.fusion = nn.Conv2d(n * c, c, 1)
        self.spatial1 = nn.Conv2d(n * c, c, 1)
        self.spatial2 = nn.Conv2d(2 * c, c, 1)
        self.spatial3 = conv3x3(c, c)
        self.spatial4 = nn.Conv2d(c, c, 1)
        self.spatial5 = conv3x3(c, c)
        self.level1 = nn.Conv2d(c, c, 1)
        self.level2 = conv3x3(2 * c, c)
        self.level3 = conv3x3(c, c)
        self.add1 = nn.Conv2d(c, c, 1)
        self.add2 = nn.Conv2d(c, c, 1)

    @staticmethod
    def _pool(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.max_pool2d(x, 3, 2, 1), F.avg_pool2d(x, 3, 2, 1)], dim=1)

    def forward(self, aligned: torch.Tensor) -> torch.Tensor:
        b, n, c, h, w = aligned.shape
        emb_ref = self.temporal_ref(aligned[:, self.center])
        emb = self.temporal_nbr(aligned.flatten(0, 1)).view(b, n, c, h, w)
        weights = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(2, keepdim=True))  # [B, N, 1, H, W]
        aligned = (aligned * weights).flatten(1, 2)

        feat = lrelu(self.fusion(aligned))
        attn = lrelu(self.spatial1(aligned))
        attn = lrelu(self.spatial2(self._pool(attn)))  # 1/2
        level = lrelu(self.level1(attn))
        level = lrelu(self.level3(lrelu(self.level2(self._pool(level)))))  # 1/4
        attn = lrelu(self.spatial3(attn)) + up2(level)
        attn = self.spatial5(up2(lrelu(self.spatial4(attn))))
        attn_add = self.add2(lrelu(self.add1(attn)))
        # x2 keeps the product near the unattended features when the sigmoid starts near 0.5.
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVR(nn.Module):
    """`forward(blur, ref=None) -> restored`, `[B, T, 3, H, W]`; each frame from its 5-frame window."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("conv_last",)

    uses_reference = False

    def __init__(
        self,
        num_feat: int = 128,
        num_frame: int = 5,
        deformable_groups: int = 8,
        num_extract_block: int = 5,
        num_reconstruct_block: int = 40,
        frame_padding: str = "replicate",
    ):
        super().__init__()
        if num_frame < 1 or num_frame % 2 == 0:
            raise ValueError(f"EDVR: num_frame must be a positive odd number, got {num_frame}")
        c = num_feat
        self.num_frame = num_frame
        window_indices(num_frame, num_frame, frame_padding)  # a wrong name fails here, naming the choices
        self.frame_padding = frame_padding
        self.predeblur = PredeblurModule(c)
        self.conv_1x1 = nn.Conv2d(c, c, 1)
        self.feature_extraction = residual_stack(num_extract_block, c)
        self.conv_l2 = nn.ModuleList([stride2(c, c), conv3x3(c, c)])
        self.conv_l3 = nn.ModuleList([stride2(c, c), conv3x3(c, c)])
        self.pcd_align = PCDAlignment(c, deformable_groups, levels=3)
        self.fusion = TSAFusion(c, num_frame, num_frame // 2)
        self.reconstruction = residual_stack(num_reconstruct_block, c)
        # Back from the 1/4 working scale to the input resolution (not a super-resolution upsampler).
        self.upconv1 = conv3x3(c, 4 * c)
        self.upconv2 = conv3x3(c, 4 * 64)
        self.conv_hr = conv3x3(64, 64)
        self.conv_last = conv3x3(64, 3)

    def _pyramid(self, frames: torch.Tensor) -> list[torch.Tensor]:
        l1 = self.feature_extraction(self.conv_1x1(self.predeblur(frames)))
        levels = [l1]
        for convs in (self.conv_l2, self.conv_l3):
            x = levels[-1]
            for conv in convs:
                x = lrelu(conv(x))
            levels.append(x)
        return levels

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c, h, w = blur.shape
        x, _ = pad_to_multiple(blur, 16)
        hp, wp = x.shape[-2:]
        pyramid = self._pyramid(x.flatten(0, 1))  # each level [B*T, C, h_l, w_l]
        idx = window_indices(t, self.num_frame, self.frame_padding).to(blur.device)  # [T, N]
        n = self.num_frame
        nbr, anchor = [], []
        for level in pyramid:
            level = level.view(b, t, *level.shape[1:])
            nbr.append(level[:, idx].flatten(0, 2))  # [B*T*N, C, h, w], window-major per frame
            anchor.append(level.unsqueeze(2).expand(-1, -1, n, -1, -1, -1).flatten(0, 2))
        aligned = self.pcd_align(nbr, anchor)
        aligned = aligned.view(b * t, n, *aligned.shape[1:])
        feat = self.reconstruction(self.fusion(aligned))
        out = lrelu(F.pixel_shuffle(self.upconv1(feat), 2))
        out = lrelu(F.pixel_shuffle(self.upconv2(out), 2))
        out = self.conv_last(lrelu(self.conv_hr(out)))
        out = out + x.flatten(0, 1)
        return out.view(b, t, c, hp, wp)[..., :h, :w]
