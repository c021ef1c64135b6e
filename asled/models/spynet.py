"""SPyNet optical flow (Ranjan & Black, CVPR 2017), the flow estimator BasicVSR and AsLeD-Net use.

Layer shapes and the state-dict layout follow the BasicSR port (six pyramid levels, each a five-layer
7x7 conv net on [reference, warped support, upsampled flow]), so a locally staged BasicSR or mmagic
SPyNet checkpoint can be loaded with `spynet_weights=...`. Nothing is ever downloaded: without a file
the network starts from random init with a zero last layer per level, i.e. it predicts zero flow
(identity warping) until training teaches it otherwise.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import DataError
from asled.models.blocks import flow_warp, register_imagenet_stats, zero_init

LEVELS = 6  # pyramid levels; the coarsest is 1/32 of the (resized) input
MULTIPLE = 2 ** (LEVELS - 1)


class SPyNetLevel(nn.Module):
    """One pyramid level: predicts a flow residual from [ref, warped supp, flow] (3 + 3 + 2 channels)."""

    def __init__(self):
        super().__init__()
        widths = [8, 32, 64, 32, 16, 2]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(cin, cout, 7, padding=3))
            if i < len(widths) - 2:
                layers.append(nn.ReLU(inplace=True))
        zero_init(layers[-1])
        # Attribute name chosen so state-dict keys read `basic_module.<level>.basic_module.<layer>.*`,
        # the layout of the public BasicSR checkpoints.
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.basic_module(x)


class SPyNet(nn.Module):
    """`forward(ref, supp) -> flow`: the flow that warps `supp` onto `ref` (`flow_warp(supp, flow) ~ ref`).

    Inputs are RGB in [0, 1], `[N, 3, H, W]`, any H and W: they are resized to the next multiple of 32
    for the pyramid and the flow is resized (and rescaled) back, as BasicVSR does.
    """

    def __init__(self, weights: str | None = None):
        super().__init__()
        self.basic_module = nn.ModuleList(SPyNetLevel() for _ in range(LEVELS))
        # ImageNet statistics: the published SPyNet weights expect inputs normalised this way.
        register_imagenet_stats(self)
        if weights:
            self.load_weights(weights)

    def load_weights(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise DataError(
                f"SPyNet weights file not found: {path}. It is a local copy of a BasicSR or mmagic SPyNet "
                "checkpoint; nothing is downloaded at run time. The paper recipe's pretrained SPyNet "
                "(mmagic spynet_20210409-c6c1bd09.pth) is staged by `asled weights fetch --only spynet`; "
                "offline, set `spynet: scratch` in the recipe's train settings (or spynet_weights: null) "
                "to start SPyNet from random init."
            )
        state = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("params", "state_dict"):
            if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                state = state[key]
        state = _normalise_keys(state)
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DataError(
                f"{path} is not a SPyNet checkpoint this code understands "
                f"(missing keys: {missing[:4]}, unexpected keys: {unexpected[:4]})"
            )

    def _pyramid_flow(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        refs = [(ref - self.mean) / self.std]
        supps = [(supp - self.mean) / self.std]
        for _ in range(LEVELS - 1):
            refs.insert(0, F.avg_pool2d(refs[0], 2, 2, count_include_pad=False))
            supps.insert(0, F.avg_pool2d(supps[0], 2, 2, count_include_pad=False))
        n, _, h0, w0 = refs[0].shape
        flow = refs[0].new_zeros(n, 2, h0 // 2, w0 // 2)
        for level, module in enumerate(self.basic_module):
            up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
            # Odd sizes at a coarse level leave the upsampled flow one pixel short; extend the border.
            dh, dw = refs[level].shape[2] - up.shape[2], refs[level].shape[3] - up.shape[3]
            if dh or dw:
                up = F.pad(up, (0, dw, 0, dh), mode="replicate")
            warped = flow_warp(supps[level], up, padding_mode="border")
            flow = up + module(torch.cat([refs[level], warped, up], dim=1))
        return flow

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        if ref.shape != supp.shape or ref.dim() != 4 or ref.shape[1] != 3:
            raise ValueError(f"SPyNet expects two [N, 3, H, W] tensors of one shape, got {tuple(ref.shape)} and {tuple(supp.shape)}")
        h, w = ref.shape[-2:]
        # The coarsest level must keep at least 2x2 pixels, so inputs below 64 are enlarged too.
        hr, wr = (max(math.ceil(s / MULTIPLE) * MULTIPLE, 2 * MULTIPLE) for s in (h, w))
        if (hr, wr) != (h, w):
            ref = F.interpolate(ref, size=(hr, wr), mode="bilinear", align_corners=False)
            supp = F.interpolate(supp, size=(hr, wr), mode="bilinear", align_corners=False)
        flow = self._pyramid_flow(ref, supp)
        if (hr, wr) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            scale = flow.new_tensor([w / wr, h / hr]).view(1, 2, 1, 1)
            flow = flow * scale
        return flow


def _normalise_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Accept BasicSR keys as they are and mmagic keys (`...basic_module.<j>.conv.weight`, j = conv index)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("spynet.").removeprefix("module.")
        m = re.fullmatch(r"basic_module\.(\d+)\.basic_module\.(\d+)\.conv\.(weight|bias)", key)
        if m:  # mmagic ConvModule: the j-th conv sits at index 2j of our Sequential (ReLUs in between)
            key = f"basic_module.{m.group(1)}.basic_module.{2 * int(m.group(2))}.{m.group(3)}"
        out[key] = value
    return out


def spynet_parameters(model: nn.Module, trainable_only: bool = True) -> list[nn.Parameter]:
    """The parameters of every `SPyNet` inside `model` (a shared SPyNet counted once), in module order;
    with `trainable_only`, those that require gradients. The rule the trainer's flow schedule uses, so any
    model, a user's own included, gets it by holding a `SPyNet` module, whatever the attribute's name."""
    seen: set[int] = set()
    params: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, SPyNet):
            for p in module.parameters():
                if id(p) not in seen and (p.requires_grad or not trainable_only):
                    seen.add(id(p))
                    params.append(p)
    return params
