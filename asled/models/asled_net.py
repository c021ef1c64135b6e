"""AsLeD-Net (Xiao & Wang, NeurIPS 2025): asymmetric dual-lens video deblurring.

Reconstructed from the paper's prose (no public code); every reading of an ambiguous sentence is listed
in docs/model_card_asled_net.md. Data flow for a clip of T frames:

  blurry clip ──SPyNet──> bidirectional recurrent propagation (BasicVSR) ──────────────> F^Base
  blurry frame ─encoder_blur─> F^B ─┬─ ALM(F^B, F^Ref) ───────────────────────────────> F^ALM
  reference    ─encoder_ref──> F^Ref├─ DC(F^B, F^ALM) ────────────────────────────────> F^DC
                                    └─ RMC(I^B, I^Ref_{t±1}, F^B, F^Ref_{t±1}; SPyNet) > F^RMC
  [F^ALM, F^DC, F^RMC, F^Base] ─fusion─> decoder (30 residual blocks) ─conv─> + blurry frame

Ablations are configuration: `use_alm/use_dc/use_rmc=False` replace a module by a stand-in of residual
blocks with (to the nearest block) the same parameter count, as the paper's Table 2 does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.alm import ALM
from asled.models.blocks import ConvResidualBlocks, conv1x1, conv3x3, flow_warp, residual_block_params, residual_stack
from asled.models.dc import DifferenceCompensation
from asled.models.rmc import ReferenceMotionCompensation
from asled.models.spynet import SPyNet


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class BidirectionalPropagation(nn.Module):
    """BasicVSR's base branch: backward then forward recurrence over the clip, each step warping the
    previous hidden state with SPyNet flow and updating it with a conv + residual-block trunk; the two
    directions are merged per frame by a 1x1 conv."""

    def __init__(self, channels: int = 64, num_blocks: int = 30):
        super().__init__()
        self.channels = channels
        self.backward_trunk = ConvResidualBlocks(3 + channels, channels, num_blocks)
        self.forward_trunk = ConvResidualBlocks(3 + channels, channels, num_blocks)
        self.fusion = conv1x1(2 * channels, channels)

    def forward(self, frames: torch.Tensor, flow_net: nn.Module) -> torch.Tensor:
        """frames `[B, T, 3, H, W]` -> F^Base `[B*T, C, H, W]` (frame-major within each clip)."""
        b, t, _, h, w = frames.shape
        if t > 1:
            earlier, later = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
            # One SPyNet call for both directions: [later -> earlier, earlier -> later] warps.
            flows = flow_net(torch.cat([earlier, later]), torch.cat([later, earlier]))
            to_earlier, to_later = flows.view(2, b, t - 1, 2, h, w).unbind(0)
        state = frames.new_zeros(b, self.channels, h, w)
        backward = [None] * t
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                state = flow_warp(state, to_earlier[:, i])
            state = self.backward_trunk(torch.cat([frames[:, i], state], dim=1))
            backward[i] = state
        state = frames.new_zeros(b, self.channels, h, w)
        merged = []
        for i in range(t):
            if i > 0:
                state = flow_warp(state, to_later[:, i - 1])
            state = self.forward_trunk(torch.cat([frames[:, i], state], dim=1))
            merged.append(F.leaky_relu(self.fusion(torch.cat([backward[i], state], dim=1)), 0.1))
        return torch.stack(merged, dim=1).flatten(0, 1)


class StandIn(nn.Module):
    """Replaces a removed module in ablations: 1x1 conv on [F^B, F^Ref] + residual blocks, sized to
    the removed module's parameter count (nearest whole number of blocks)."""

    def __init__(self, channels: int, target_params: int):
        super().__init__()
        self.merge = conv1x1(2 * channels, channels)
        spare = target_params - count(self.merge)
        self.blocks = residual_stack(max(0, round(spare / residual_block_params(channels))), channels)

    def forward(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.merge(torch.cat([f_blur, f_ref], dim=1)))


class AsLeDNet(nn.Module):
    """`forward(blur, ref) -> restored`, all `[B, T, 3, H, W]` in [0, 1]; any H, W."""

    uses_reference = True

    def __init__(
        self,
        mid_channels: int = 64,
        propagation_blocks: int = 30,
        encoder_blocks: int = 1,
        dc_blocks: int = 1,
        rmc_refine_blocks: int = 1,
        fusion_blocks: int = 1,
        decoder_blocks: int = 30,
        top_k: int = 3,
        chunk_size: int = 4096,
        alm_temperature: float = 1.0,
        use_alm: bool = True,
        use_dc: bool = True,
        use_rmc: bool = True,
        dc_use_ref: bool = True,
        rmc_refine: bool = True,
        rmc_warp: bool = True,
        spynet_weights: str | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        c = mid_channels
        self.use_alm, self.use_dc, self.use_rmc = use_alm, use_dc, use_rmc
        # One SPyNet serves the base branch (blurry <-> blurry) and RMC (blurry -> reference).
        self.spynet = SPyNet(spynet_weights)
        self.base = BidirectionalPropagation(c, propagation_blocks)
        self.encoder_blur = ConvResidualBlocks(3, c, encoder_blocks)
        self.encoder_ref = ConvResidualBlocks(3, c, encoder_blocks)  # unshared: the lenses differ
        alm = ALM(c, top_k, chunk_size, alm_temperature)
        self.alm = alm if use_alm else StandIn(c, count(alm))
        dc = DifferenceCompensation(c, dc_blocks, use_ref=dc_use_ref)
        self.dc = dc if use_dc else StandIn(c, count(dc))
        rmc = ReferenceMotionCompensation(c, rmc_refine_blocks, refine=rmc_refine, warp=rmc_warp)
        self.rmc = rmc if use_rmc else StandIn(c, count(rmc))
        self.fusion = ConvResidualBlocks(4 * c, c, fusion_blocks)
        self.decoder = residual_stack(decoder_blocks, c)
        self.conv_out = conv3x3(c, 3)
        if channels_last:
            # Same numbers up to float rounding, ~1.5x faster 3x3 convs on CPU (oneDNN); activations
            # follow at every ConvResidualBlocks entry (see blocks.match_memory_format).
            self.to(memory_format=torch.channels_last)

    def forward(self, blur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"AsLeDNet expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        if ref is None or ref.shape != blur.shape:
            got = None if ref is None else tuple(ref.shape)
            raise ValueError(f"AsLeDNet needs a reference clip of the blurry clip's shape {tuple(blur.shape)}, got {got}")
        b, t, _, h, w = blur.shape
        f_base = self.base(blur, self.spynet)
        f_b = self.encoder_blur(blur.flatten(0, 1))
        f_ref = self.encoder_ref(ref.flatten(0, 1))
        f_alm = self.alm(f_b, f_ref)
        f_dc = self.dc(f_b, f_alm) if self.use_dc else self.dc(f_b, f_ref)
        if self.use_rmc:
            shape = (b, t, -1, h, w)
            f_rmc = self.rmc(blur, ref, f_b.view(shape), f_ref.view(shape), self.spynet).flatten(0, 1)
        else:
            f_rmc = self.rmc(f_b, f_ref)
        x = self.fusion(torch.cat([f_alm, f_dc, f_rmc, f_base], dim=1))
        residual = self.conv_out(self.decoder(x))
        return blur + residual.view(b, t, 3, h, w)


def parameter_breakdown(model: AsLeDNet) -> dict[str, int]:
    """Parameters per part (top-level submodule) plus 'total'; the shared SPyNet is counted once."""
    parts = {name: count(module) for name, module in model.named_children()}
    parts["total"] = count(model)
    return parts


if __name__ == "__main__":  # python -m asled.models.asled_net: print the breakdown
    for name, n in parameter_breakdown(AsLeDNet()).items():
        print(f"{name:14s} {n:>10,d}")
