"""RefVSR (Lee et al., CVPR 2022; codeslake/RefVSR), fed the prepared ultra-wide reference.

Configuration: the released x4 model ("Ours", `config_RefVSR_MFID` / `_L1`): 48 channels, 30 residual
blocks per propagation direction, matching kernel 2, SPyNet flow, VGG19 conv1_1/conv1_2 matching
features. Its two-level layout is kept with the same resolution ratios: in RefVSR the reference has
twice the resolution of the low-resolution (LR) level and an upsampling level (UP) at the reference's
resolution feeds a final x2 upsampler. Here the reference is the prepared UW frame at the blurry frame's
size H x W, so the LR level is the blurry frame bicubically downsampled x2 (H/2 x W/2), the UP level is
H x W, and the final pixel-shuffle upsampler becomes a same-resolution 3x3 conv (as the AsLeD-Net paper
did for its SR baselines). Output = reconstruction + the full-resolution blurry frame.

Per frame:
  * matching: VGG19 conv1_1, conv1_2 (+ 1x1 conv to 16 channels) on the LR frame and on the reference
    average-pooled x2; every 3x3 LR patch picks its most cosine-similar reference patch (index map) and
    that similarity is the confidence map (no network weights downloaded: random init, or a local
    torchvision VGG19 checkpoint via `vgg_weights`);
  * reference features: conv-conv + 4 residual blocks at H x W, then a stride-2 conv-conv + 4 residual
    blocks at H/2; level-1 alignment copies the matched reference feature, level-2 alignment copies the
    matched 2x2 reference patch and resamples it with a per-patch scale + rotation predicted from the
    (equally copied) reference image and the upsampled LR frame (DCSR's aligned attention);
  * recurrence (backward over the clip, then forward): the LR state and the UP state are warped with
    SPyNet flow (x2 for the UP level), the LR state is updated by conv + 30 residual blocks on
    [LR frame, state], then the reference alignment and propagation module fuses the aligned reference
    features into both levels, gated by convs on [propagated confidence, current confidence], and the
    propagated confidence becomes the running maximum;
  * reconstruction: backward and forward UP states merged (1x1 conv plus a confidence-gated fusion),
    4 residual blocks, conv (replacing the x2 upsampler), conv_hr, conv_last.

Adaptations beside the upsampler: the official net restores the centre frame of a 7-frame window (its
forward branch is cached across windows at test time); here one bidirectional pass restores every frame
of the clip, BasicVSR-style. The state-independent reference alignment is computed once per frame
instead of once per direction (same result). SPyNet is trained by default because it starts from random
init (the official freezes a pretrained one; `freeze_spynet=True` with `spynet_weights` does that).
Parameters: 5.66 M (official x4 model 5.72 M with SPyNet; the AsLeD-Net paper prints 4.8 M, which the
official configuration cannot give: docs/model_card_baselines.md).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import DataError
from asled.models.blocks import (
    ConvResidualBlocks,
    LeakyResidualBlock,
    conv1x1,
    conv3x3,
    flow_warp,
    pad_to_multiple,
)
from baselines._propagation import PixelShuffleUp, adjacent_flows, build_spynet

ROTATION_RANGE = math.pi / 3  # the official 1.0472: an affine channel of 1 +- 1 rotates by -+60 degrees


def lrelu(x: torch.Tensor, slope: float = 0.1) -> torch.Tensor:
    return F.leaky_relu(x, slope)


def conv_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """RefVSR's BasicBlock: conv + LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
        nn.LeakyReLU(0.2),
    )


class ResList(nn.Module):
    """`num_blocks` leaky residual blocks (RefVSR's / DCSR's ResBlock), a tail conv, and a long skip (RefVSR's ResList)."""

    def __init__(self, num_blocks: int, channels: int):
        super().__init__()
        self.blocks = nn.Sequential(*(LeakyResidualBlock(channels, 0.2) for _ in range(num_blocks)))
        self.conv_tail = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_tail(self.blocks(x))


def _patches3x3(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, 9C, h*w]: every 3x3 neighbourhood (reflection padded), one column per pixel."""
    return F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3)


class FeatureMatching(nn.Module):
    """LR frame vs reference: index of the best reference patch per LR pixel, and its cosine similarity."""

    def __init__(self, chunk_size: int = 4096, vgg_weights: str | None = None):
        super().__init__()
        self.chunk_size = chunk_size
        # VGG19 features[0:4] (conv1_1, ReLU, conv1_2, ReLU): the depth RefVSR uses at x4.
        self.vgg = nn.Sequential(conv3x3(3, 64), nn.ReLU(), conv3x3(64, 64), nn.ReLU())
        self.map = conv_act(64, 16, 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        if vgg_weights:
            self.load_vgg(vgg_weights)

    def load_vgg(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"VGG19 weights file not found: {path}. It is a local copy of torchvision's ImageNet VGG19 "
                "checkpoint (vgg19-dcbb9e9d.pth), staged under data/weights/; nothing is downloaded. Stage the "
                "file there, or set vgg_weights: null to start from random init."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {f"features.{i}.{p}": f"{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
        missing = [k for k in wanted if k not in state]
        if missing:
            raise DataError(f"{path} is not a torchvision VGG19 checkpoint (missing keys: {missing})")
        self.vgg.load_state_dict({ours: state[theirs] for theirs, ours in wanted.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.map(self.vgg((x - self.mean) / self.std))

    def forward(self, lr: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """lr [N, 3, h, w], ref [N, 3, 2h, 2w] -> confidence [N, 1, h, w], index [N, h*w] into (h, w)."""
        n, _, h, w = lr.shape
        query = F.normalize(_patches3x3(self.features(lr)), dim=1)  # [N, D, h*w]
        keys = F.normalize(_patches3x3(self.features(F.avg_pool2d(ref, 2))), dim=1)  # [N, D, h*w]
        with torch.no_grad():
            # Chunks of query pixels keep the similarity matrix at (h*w) x chunk_size per frame.
            index = torch.cat(
                [
                    torch.bmm(keys.transpose(1, 2), query[:, :, s : s + self.chunk_size]).argmax(dim=1)
                    for s in range(0, h * w, self.chunk_size)
                ],
                dim=1,
            )
        # The confidence is recomputed from the chosen pairs so it carries a gradient to the matcher.
        best = torch.gather(keys, 2, index.unsqueeze(1).expand(-1, keys.shape[1], -1))
        return (best * query).sum(dim=1).view(n, 1, h, w), index


def gather_pixels(value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """value [N, C, h, w]; index [N, h*w] -> value at index, laid out on the query grid."""
    n, c, h, w = value.shape
    return torch.gather(value.flatten(2), 2, index.unsqueeze(1).expand(-1, c, -1)).view(n, c, h, w)


def gather_patches(value: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """value [N, C, 2h, 2w]; index [N, h*w] -> the matched 2x2 patches tiled on a [N, C, 2h, 2w] grid."""
    return F.pixel_shuffle(gather_pixels(F.pixel_unshuffle(value, 2), index), 2)


class AlignedConv(nn.Module):
    """Resamples each copied 2x2 reference patch with its own scale (x, y) and rotation, predicted from the
    copied reference image and the upsampled LR frame (RefVSR's AlignedConv2d, kernel 2, stride 2)."""

    def __init__(self, channels: int = 32):
        super().__init__()
        self.embed = nn.Sequential(
            nn.Conv2d(3, channels, 5, padding=2), nn.LeakyReLU(0.2), LeakyResidualBlock(channels, 0.2), nn.LeakyReLU(0.2)
        )
        self.predict = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 5, stride=2, padding=2),
            nn.LeakyReLU(0.2),
            LeakyResidualBlock(channels, 0.2),
            nn.LeakyReLU(0.2),
            conv1x1(channels, 3),
        )

    def forward(self, value: torch.Tensor, query: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """value [N, C, H, W] (copied features), query [N, 3, H, W], ref [N, 3, H, W] (copied image)."""
        hh, ww = value.shape[-2:]
        affine = (self.predict(torch.cat([self.embed(ref), self.embed(query)], dim=1)) + 1.0).clamp(-3, 3)
        affine = F.interpolate(affine, scale_factor=2, mode="nearest")  # one transform per 2x2 patch
        sy, sx, theta = affine[:, 0], affine[:, 1], (affine[:, 2] - 1.0) * ROTATION_RANGE
        rows = torch.arange(hh, device=value.device, dtype=value.dtype).view(-1, 1).expand(hh, ww)
        cols = torch.arange(ww, device=value.device, dtype=value.dtype).view(1, -1).expand(hh, ww)
        # Tap offsets from the patch centre (+-0.5 px), scaled, then rotated.
        dy, dx = (rows % 2 - 0.5) * sy, (cols % 2 - 0.5) * sx
        cos, sin = torch.cos(theta), torch.sin(theta)
        y = rows - rows % 2 + 0.5 + dy * cos - dx * sin
        x = cols - cols % 2 + 0.5 + dy * sin + dx * cos
        # Reflection-padded by one pixel and clamped at its border, as the official sampler.
        padded = F.pad(value, (1, 1, 1, 1), mode="reflect")
        grid = torch.stack((2 * (x + 1) / (ww + 1) - 1, 2 * (y + 1) / (hh + 1) - 1), dim=-1)
        return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=True)


class RefVSR(nn.Module):
    """`forward(blur, ref) -> restored` on `[B, T, 3, H, W]`; `ref` is the prepared UW reference clip."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("conv_last",)

    uses_reference = True

    def __init__(
        self,
        mid_channels: int = 48,
        num_blocks: int = 30,
        chunk_size: int = 4096,
        spynet_weights: str | None = None,
        freeze_spynet: bool = False,
        vgg_weights: str | None = None,
    ):
        super().__init__()
        c = self.channels = mid_channels
        self.freeze_spynet = freeze_spynet
        self.spynet = build_spynet(spynet_weights, freeze_spynet)
        self.feature_match = FeatureMatching(chunk_size, vgg_weights)
        self.align2 = AlignedConv(32)
        self.ref_encoder1 = nn.Sequential(conv_act(3, c), conv_act(c, c))
        self.res1 = ResList(4, c)
        self.ref_encoder2 = nn.Sequential(conv_act(c, c, stride=2), conv_act(c, c))
        self.res2 = ResList(4, c)
        # Reference alignment and propagation, level 1 (LR) and level 2 (UP); shared by both directions.
        self.conf_fusion = nn.Sequential(conv_act(2, 16), conv_act(16, c))
        self.feat_fusion = nn.Sequential(conv_act(2 * c, c), conv_act(c, c))
        self.feat_decoder = ResList(8, c)
        self.upsample1 = PixelShuffleUp(c)  # LR -> UP level inside the recurrence: kept
        self.conf_fusion2 = nn.Sequential(conv_act(2, 16), conv_act(16, c))
        self.feat_fusion2_1 = conv_act(2 * c, c)
        self.feat_fusion2 = nn.Sequential(conv_act(2 * c, c), conv_act(c, c))
        self.feat_decoder2 = ResList(4, c)
        self.backward_resblocks = ConvResidualBlocks(c + 3, c, num_blocks)
        self.forward_resblocks = ConvResidualBlocks(c + 3, c, num_blocks)
        # Merge of the two directions and reconstruction.
        self.conf_fusion_bwfw = nn.Sequential(conv_act(2, 16), conv_act(16, c))
        self.feat_fusion_bwfw = nn.Sequential(conv_act(2 * c, c), conv_act(c, c))
        self.feat_decoder_bwfw = ResList(4, c)
        self.fusion_up = conv1x1(2 * c, c)
        self.upconv2 = conv3x3(c, c)  # stands in for the final x2 pixel-shuffle upsampler
        self.conv_hr = conv3x3(c, c)
        self.conv_last = conv3x3(c, 3)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)

    def _propagate(self, lr, conf, aligned1, aligned2, flows, backward: bool):
        """One direction over the clip; returns per-frame (UP state, propagated confidence) in time order."""
        b, t, _, h, w = lr.shape
        trunk = self.backward_resblocks if backward else self.forward_resblocks
        state = lr.new_zeros(b, self.channels, h, w)
        state_up = lr.new_zeros(b, self.channels, 2 * h, 2 * w)
        conf_prop = lr.new_zeros(b, 1, h, w)
        order = range(t - 1, -1, -1) if backward else range(t)
        ups, confs = [None] * t, [None] * t
        for step, i in enumerate(order):
            if step > 0:
                flow = flows[:, i] if backward else flows[:, i - 1]
                state = flow_warp(state, flow)
                conf_prop = flow_warp(conf_prop, flow)
                flow_up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
                state_up = flow_warp(state_up, flow_up)
            state = trunk(torch.cat([lr[:, i], state], dim=1))
            gate = self.conf_fusion(torch.cat([conf_prop, conf[:, i]], dim=1))
            state = self.feat_decoder(state + gate * self.feat_fusion(torch.cat([state, aligned1[:, i]], dim=1)))
            state_up = self.feat_fusion2_1(torch.cat([state_up, self.upsample1(state)], dim=1))
            gate = self.conf_fusion2(torch.cat([self._up(conf_prop), self._up(conf[:, i])], dim=1))
            state_up = self.feat_decoder2(state_up + gate * self.feat_fusion2(torch.cat([state_up, aligned2[:, i]], dim=1)))
            conf_prop = torch.maximum(conf_prop, conf[:, i])
            ups[i], confs[i] = state_up, conf_prop
        return torch.stack(ups, dim=1), torch.stack(confs, dim=1)

    def forward(self, blur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"RefVSR expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        if ref is None or ref.shape != blur.shape:
            got = None if ref is None else tuple(ref.shape)
            raise ValueError(f"RefVSR needs a reference clip of the blurry clip's shape {tuple(blur.shape)}, got {got}")
        b, t, _, h0, w0 = blur.shape
        blur_p, _ = pad_to_multiple(blur, 2)
        ref_p, _ = pad_to_multiple(ref, 2)
        hh, ww = blur_p.shape[-2:]
        h, w = hh // 2, ww // 2
        frames, refs = blur_p.flatten(0, 1), ref_p.flatten(0, 1)
        lr = F.interpolate(frames, scale_factor=0.5, mode="bicubic", align_corners=False).clamp(0, 1)
        if self.freeze_spynet:
            with torch.no_grad():
                to_earlier, to_later = adjacent_flows(lr.view(b, t, 3, h, w), self.spynet)
        else:
            to_earlier, to_later = adjacent_flows(lr.view(b, t, 3, h, w), self.spynet)
        conf, index = self.feature_match(lr, refs)
        ref_feat = self.res1(self.ref_encoder1(refs))  # [BT, C, H, W]
        ref_feat_down = self.res2(self.ref_encoder2(ref_feat))  # [BT, C, h, w]
        aligned1 = gather_pixels(ref_feat_down, index)
        aligned2 = self.align2(gather_patches(ref_feat, index), self._up(lr), gather_patches(refs, index))
        per_clip = lambda x: x.view(b, t, *x.shape[1:])
        lr, conf, aligned1, aligned2 = map(per_clip, (lr, conf, aligned1, aligned2))
        up_bw, conf_bw = self._propagate(lr, conf, aligned1, aligned2, to_earlier, backward=True)
        up_fw, conf_fw = self._propagate(lr, conf, aligned1, aligned2, to_later, backward=False)
        both = torch.cat([up_bw.flatten(0, 1), up_fw.flatten(0, 1)], dim=1)
        gate = self.conf_fusion_bwfw(torch.cat([self._up(conf_bw.flatten(0, 1)), self._up(conf_fw.flatten(0, 1))], dim=1))
        x = self.feat_decoder_bwfw(self.fusion_up(both) + gate * self.feat_fusion_bwfw(both))
        x = lrelu(self.upconv2(x))
        x = lrelu(self.conv_hr(x))
        out = self.conv_last(x).view(b, t, 3, hh, ww)[..., :h0, :w0]
        return blur + out
