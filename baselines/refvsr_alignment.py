"""RefVSR's reference matching and alignment (codeslake/RefVSR `models/archs/RefVSR_/attention.py`,
`alignment.py`, `common.py`; after DCSR's aligned attention), and its inter-frame `warp` (`models/utils.py`).

  * `FeatureMatching`: VGG19 conv1_1, conv1_2 (+ 1x1 conv to 16 channels, LeakyReLU(0.2)) on the LR
    frame and on the reference average-pooled x2; every 3x3 LR patch picks its most cosine-similar
    reference patch (index map), and that similarity is the confidence map;
  * `gather_pixels` / `gather_patches`: copy the matched reference feature (level 1) or the matched 2x2
    reference patch (level 2);
  * `AlignedConv`: resamples each copied 2x2 patch with its own scale (x, y) and rotation, predicted from
    the copied reference image and the x2 bicubic-upsampled LR frame;
  * `official_warp`: the official warp, kept as it ran (model card: D1).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import DataError
from asled.models.blocks import LeakyResidualBlock, conv1x1, conv3x3, register_imagenet_stats

# The official rotation factor, written as the decimal 1.0472 (pi/3 = 1.04719755...): an affine channel of
# 1 +- 1 rotates by about -+60 degrees. Kept as written so the sampled positions match (model card: D4).
ROTATION_RANGE = 1.0472


def conv_act(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """RefVSR's BasicBlock: conv + LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
        nn.LeakyReLU(0.2),
    )


def official_warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """RefVSR's `warp`: sample `x` [N, C, h, w] on the grid of `flow` [N, 2, H, W] (pixels of `x`).

    The base grid is `linspace(-1, 1, W)` (pixel centres under align_corners=True) but grid_sample runs
    with align_corners=False, so even a zero flow resamples `x` (a shrink by (W-1)/W about the centre,
    bilinear, zeros outside), unlike BasicVSR's `flow_warp`. When `flow` is larger than `x` (the official
    forward branch's LR-state-onto-UP-grid warp) the grid covers `x` at the flow's resolution.
    """
    h, w = x.shape[-2:]
    fh, fw = flow.shape[-2:]
    kw = {"dtype": flow.dtype, "device": flow.device}
    gx = torch.linspace(-1.0, 1.0, fw, **kw).view(1, 1, fw) + flow[:, 0] / max((w - 1.0) / 2.0, 0.5)
    gy = torch.linspace(-1.0, 1.0, fh, **kw).view(1, fh, 1) + flow[:, 1] / max((h - 1.0) / 2.0, 0.5)
    return F.grid_sample(x, torch.stack((gx, gy), dim=-1), mode="bilinear", padding_mode="zeros", align_corners=False)


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
        register_imagenet_stats(self)
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


def _border_weight(pos: torch.Tensor, size: int) -> torch.Tensor:
    """The official sampler clamps a tap's corner indices and its position separately, so a tap at or past
    the last row (column) of the padded map, or before the first, gets bilinear weights summing to 2 on
    that axis: 2 there, 1 elsewhere (`pos` in padded pixels, `size` the padded length)."""
    return 1.0 + ((pos < 0) | (pos >= size - 1)).to(pos.dtype)


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

    def forward(self, value: torch.Tensor, lr: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """value [N, C, H, W] (copied features), lr [N, 3, H/2, W/2], ref [N, 3, H, W] (copied image)."""
        hh, ww = value.shape[-2:]
        # The official upsamples the LR frame without clamping it to [0, 1] (model card: D3).
        query = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
        affine = (self.predict(torch.cat([self.embed(ref), self.embed(query)], dim=1)) + 1.0).clamp(-3, 3)
        affine = F.interpolate(affine, scale_factor=2, mode="nearest")  # one transform per 2x2 patch
        sy, sx, theta = affine[:, 0], affine[:, 1], (affine[:, 2] - 1.0) * ROTATION_RANGE
        rows = torch.arange(hh, device=value.device, dtype=value.dtype).view(-1, 1).expand(hh, ww)
        cols = torch.arange(ww, device=value.device, dtype=value.dtype).view(1, -1).expand(hh, ww)
        # Tap offsets from the patch centre (+-0.5 px), scaled, then rotated; positions in the padded map.
        dy, dx = (rows % 2 - 0.5) * sy, (cols % 2 - 0.5) * sx
        cos, sin = torch.cos(theta), torch.sin(theta)
        y = rows - rows % 2 + 1.5 + dy * cos - dx * sin
        x = cols - cols % 2 + 1.5 + dy * sin + dx * cos
        # Reflection-padded by one pixel and clamped at its border, as the official sampler.
        padded = F.pad(value, (1, 1, 1, 1), mode="reflect")
        grid = torch.stack((2 * x / (ww + 1) - 1, 2 * y / (hh + 1) - 1), dim=-1)
        out = F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out * (_border_weight(y, hh + 2) * _border_weight(x, ww + 2)).unsqueeze(1)
