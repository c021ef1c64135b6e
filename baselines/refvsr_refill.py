"""Information refill for RefVSR-IR ("Ours-IR", codeslake/RefVSR `models/archs/RefVSR_IR.py`).

RefVSR-IR borrows IconVSR's information refill (Chan et al., CVPR 2021, via mmedit): at keyframes the
recurrent LR state is concatenated with features of the 5-frame window around the frame and fused back
by a 3x3 conv. The window features come from EDVR-M's front end (`EDVRFeatureExtractor`): conv +
LeakyReLU(0.1), residual blocks, two more pyramid levels (stride-2 conv + conv, LeakyReLU(0.1)), PCD
alignment of every window frame to the centre frame, TSA fusion. Official widths: 64 channels, 5
residual blocks, 8 deformable groups; the PCD and TSA modules are the ones our EDVR baseline uses.

Keyframes are frames 0, s, 2s, ... (s = `keyframe_stride`, 5 in the IR config) and always the last
frame. Window frames outside the clip follow mmedit IconVSR's padding, which the official copies: two
frames before the clip are frames 4 and 3, two after are frames T-4 and T-5 (a reflection about the
second and the second-to-last frame). That needs T >= 5; shorter clips use `window_indices`' mirror.
The official reflect-pads the LR frames to a multiple of 4 for the pyramid and crops the features back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv3x3, residual_stack
from asled.models.pcd_alignment import PCDAlignment
from baselines.dbn import window_indices
from baselines.edvr import TSAFusion

WINDOW = 5  # EDVR-M's input frames in IconVSR


def keyframes(num_frames: int, stride: int) -> list[int]:
    """0, stride, 2*stride, ... and the last frame (IconVSR's keyframe rule for a clip's first window)."""
    frames = list(range(0, num_frames, stride))
    return frames if frames[-1] == num_frames - 1 else frames + [num_frames - 1]


def refill_window(num_frames: int, centre: int) -> list[int]:
    """The 5 frame indices EDVR-M sees for the keyframe `centre` (mmedit IconVSR's clip-end padding)."""
    if num_frames < WINDOW:
        return window_indices(num_frames, WINDOW)[centre].tolist()
    out = []
    for i in range(centre - WINDOW // 2, centre + WINDOW // 2 + 1):
        if i < 0:
            i = 2 - i  # -1 -> 3, -2 -> 4
        elif i >= num_frames:
            i = 2 * (num_frames - 2) - i  # T -> T-4, T+1 -> T-5
        out.append(i)
    return out


class RefillExtractor(nn.Module):
    """`forward(lr [B, T, 3, h, w], frames) -> {frame: [B, C, h, w]}`: EDVR-M features of each keyframe's window."""

    def __init__(self, channels: int = 64, num_blocks: int = 5, groups: int = 8):
        super().__init__()
        c = channels
        self.conv_first = conv3x3(3, c)
        self.feature_extraction = residual_stack(num_blocks, c)
        self.conv_l2 = nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1), conv3x3(c, c)])
        self.conv_l3 = nn.ModuleList([nn.Conv2d(c, c, 3, stride=2, padding=1), conv3x3(c, c)])
        self.pcd_align = PCDAlignment(c, groups, levels=3)
        self.fusion = TSAFusion(c, WINDOW, WINDOW // 2)

    def _pyramid(self, frames: torch.Tensor) -> list[torch.Tensor]:
        levels = [self.feature_extraction(F.leaky_relu(self.conv_first(frames), 0.1))]
        for convs in (self.conv_l2, self.conv_l3):
            x = levels[-1]
            for conv in convs:
                x = F.leaky_relu(conv(x), 0.1)
            levels.append(x)
        return levels

    def forward(self, lr: torch.Tensor, frames: list[int]) -> dict[int, torch.Tensor]:
        b, t, _, h, w = lr.shape
        ph, pw = -h % 4, -w % 4
        # Reflect padding as the official; frames too small to reflect (under 4 px) replicate instead.
        mode = "reflect" if min(h, w) > 3 else "replicate"
        padded = F.pad(lr.flatten(0, 1), (0, pw, 0, ph), mode=mode) if ph or pw else lr.flatten(0, 1)
        # Each frame's pyramid once per clip; the windows then index into it.
        pyramid = [x.view(b, t, *x.shape[1:]) for x in self._pyramid(padded)]
        # (neighbour, keyframe) pairs to align; at clip ends a window repeats frames, so each distinct
        # pair is aligned once (the same values as aligning every window slot).
        pairs = [(n, i) for i in frames for n in refill_window(t, i)]
        unique = list(dict.fromkeys(pairs))
        nbr_idx, centre_idx = (torch.tensor(ix, device=lr.device) for ix in zip(*unique))
        aligned = self.pcd_align([x[:, nbr_idx].flatten(0, 1) for x in pyramid],
                                 [x[:, centre_idx].flatten(0, 1) for x in pyramid])  # [B*P, C, h, w]
        slots = torch.tensor([unique.index(p) for p in pairs], device=lr.device)
        aligned = aligned.view(b, len(unique), *aligned.shape[1:])[:, slots]  # [B, K*5, C, h, w]
        k = len(frames)
        feats = self.fusion(aligned.reshape(b * k, WINDOW, *aligned.shape[2:])).view(b, k, -1, h + ph, w + pw)[..., :h, :w]
        return {i: feats[:, j] for j, i in enumerate(frames)}
