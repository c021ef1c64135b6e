"""AsLeD-Net (Xiao & Wang, NeurIPS 2025): asymmetric dual-lens video deblurring.

Reconstructed from the paper's prose (no public code); every reading of an ambiguous sentence is listed
in docs/model_card_asled_net.md. Data flow for a clip of T frames:

  blurry clip ──SPyNet──> bidirectional recurrent propagation (BasicVSR) ──────────────> F^Base
  blurry frame ─encoder_blur─> F^B ─┬─ ALM(F^B, F^Ref) ───────────────────────────────> F^ALM
  reference    ─encoder_ref──> F^Ref├─ DC(F^B, F^ALM or F^Ref: `dc_input`) ────────────> F^DC
                                    └─ RMC(I^B, I^Ref_{t±1}, F^B, F^Ref_{t±1}; SPyNet) > F^RMC
  [F^ALM, F^DC, F^RMC, F^Base] ─fusion─> decoder (30 residual blocks) ─conv─> + blurry frame

Ablations are configuration, never copied code: `alm_variant`, `dc_variant` and `rmc_variant` choose what
fills each slot ("none" = a stand-in of residual blocks with the removed module's parameter count, as
the paper's Table 2 does; otherwise the replacements of Supplementary Table 1). `use_alm/use_dc/use_rmc
=False` are aliases of the "none" variants. Every row of both tables is a catalogue entry
(asled/models/catalog.yaml, `asled_net_t2_*`, `asled_net_s1_*`); see docs/model_card_asled_net.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.alm import ALM
from asled.models.blocks import (
    ConvResidualBlocks,
    ResidualBlock,
    conv1x1,
    conv3x3,
    flow_warp,
    residual_block_params,
    residual_stack,
)
from asled.models.channel_attention import ConcatChannelAttention
from asled.models.dc import DifferenceCompensation
from asled.models.deformable_attention import DeformableAttention
from asled.models.masa_matching import MASAMatching
from asled.models.pcd_alignment import PCDMotionCompensation, neighbour_indices
from asled.models.rmc import ReferenceMotionCompensation
from asled.models.spynet import SPyNet

ALM_VARIANTS = ("topk", "none", "concat_ca", "dat", "masa")
DC_INPUTS = ("alm", "ref")
DC_VARIANTS = ("dc", "none", "concat_ca")
RMC_VARIANTS = ("rmc", "none", "concat_res", "pcd")


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


class NarrowResidualBlock(nn.Module):
    """conv3x3(C->m) - ReLU - conv3x3(m->C) plus identity: a residual block of any size 1153*m + C
    (at C = 64), used to bring a stand-in to the removed module's exact size (to within ~600 params)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv1 = conv3x3(channels, hidden)
        self.conv2 = conv3x3(hidden, channels)
        for conv in (self.conv1, self.conv2):  # same near-identity init as ResidualBlock
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


def narrow_block_params(channels: int, hidden: int) -> int:
    return channels * hidden * 9 + hidden + hidden * channels * 9 + channels


class StandIn(nn.Module):
    """Replaces a removed module in ablations: 1x1 conv on [F^B, F^Ref] + residual blocks, sized to
    the removed module's parameter count: as many full residual blocks as fit, then one narrow residual
    block (hidden width chosen to the nearest channel) for the rest, so a stand-in is within
    ~(18C+1)/2 parameters (~580 at C = 64) of its target."""

    def __init__(self, channels: int, target_params: int):
        super().__init__()
        self.merge = conv1x1(2 * channels, channels)
        spare = max(0, target_params - count(self.merge))
        full, rest = divmod(spare, residual_block_params(channels))
        blocks: list[nn.Module] = [ResidualBlock(channels) for _ in range(full)]
        per_hidden = narrow_block_params(channels, 1) - narrow_block_params(channels, 0)
        hidden = round((rest - channels) / per_hidden)
        if hidden >= 1 and abs(rest - narrow_block_params(channels, hidden)) < rest:
            blocks.append(NarrowResidualBlock(channels, hidden))
        self.blocks = nn.Sequential(*blocks) if blocks else nn.Identity()

    def forward(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.merge(torch.cat([f_blur, f_ref], dim=1)))


class ConcatResidualCompensation(nn.Module):
    """RMC slot, supp. (n) "RMC -> concat + residual block": the neighbours' reference features
    (t-1, t+1; unaligned) and F^B_t are concatenated, merged by a 1x1 conv and one residual block, and
    added to F^B_t. Same call as `ReferenceMotionCompensation` (images and flow net unused)."""

    def __init__(self, channels: int = 64, num_blocks: int = 1):
        super().__init__()
        self.merge = conv1x1(3 * channels, channels)
        self.blocks = residual_stack(num_blocks, channels)

    def forward(self, blur, ref, f_blur: torch.Tensor, f_ref: torch.Tensor, flow_net=None) -> torch.Tensor:
        b, t, c, h, w = f_blur.shape
        neigh = f_ref[:, neighbour_indices(t)].view(b, 2, t, c, h, w)
        x = torch.cat([neigh[:, 0].flatten(0, 1), neigh[:, 1].flatten(0, 1), f_blur.flatten(0, 1)], dim=1)
        return f_blur + self.blocks(self.merge(x)).view(b, t, c, h, w)


def _resolve_variant(slot: str, variant: str, enabled: bool, choices: tuple[str, ...]) -> str:
    if variant not in choices:
        raise ValueError(f"{slot}_variant must be one of {choices}, got {variant!r}")
    if not enabled:
        if variant not in (choices[0], "none"):
            raise ValueError(f"use_{slot}=False conflicts with {slot}_variant={variant!r}")
        return "none"
    return variant


class AsLeDNet(nn.Module):
    """`forward(blur, ref) -> restored`, all `[B, T, 3, H, W]` in [0, 1]; any H, W."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("conv_out",)

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
        alm_learnable_temperature: bool = False,
        alm_mode: str = "global",
        alm_window: int = 15,
        use_alm: bool = True,
        use_dc: bool = True,
        use_rmc: bool = True,
        dc_use_ref: bool = True,
        dc_input: str = "alm",
        rmc_refine: bool = True,
        rmc_warp: bool = True,
        spynet_weights: str | None = None,
        channels_last: bool = True,
        alm_variant: str = "topk",
        dc_variant: str = "dc",
        rmc_variant: str = "rmc",
        ca_reduction: int = 16,
        dat_groups: int = 8,
        dat_kernel_size: int = 3,
        masa_scale: int = 4,
        masa_radius: int = 2,
        pcd_levels: int = 3,
        pcd_groups: int = 8,
        concat_res_blocks: int = 1,
    ):
        """Slot variants (the defaults are the paper's model):
        alm_variant: "topk" (ALM, K = `top_k`), "none" (stand-in), "concat_ca" (concat + channel
            attention), "dat" (DAT-style deformable attention), "masa" (MASA-SR-style matching);
        dc_variant: "dc", "none", "concat_ca" (on DC's input [F^B, F^ALM or F^Ref], see `dc_input`);
        rmc_variant: "rmc" (`rmc_refine`, `rmc_warp` apply), "none", "concat_res", "pcd" (EDVR PCD).
        `use_alm/use_dc/use_rmc=False` mean the "none" variant of that slot.

        Readings of ambiguous prose (docs/model_card_asled_net.md):
        alm_temperature / alm_learnable_temperature: ALM's softmax temperature T, fixed or a learned
            log T starting at log(alm_temperature);
        dc_input: what DC (and its "concat_ca" replacement) compares F^B_t with: "alm" = F^ALM_t,
            "ref" = the reference encoder's F^Ref_t of the same time step.
        An identity start (output conv zeroed) is the recipe option `identity_start` (registry)."""
        super().__init__()
        c = mid_channels
        if dc_input not in DC_INPUTS:
            raise ValueError(f"dc_input must be one of {DC_INPUTS}, got {dc_input!r}")
        self.dc_input = dc_input
        alm_variant = _resolve_variant("alm", alm_variant, use_alm, ALM_VARIANTS)
        dc_variant = _resolve_variant("dc", dc_variant, use_dc, DC_VARIANTS)
        rmc_variant = _resolve_variant("rmc", rmc_variant, use_rmc, RMC_VARIANTS)
        self.alm_variant, self.dc_variant, self.rmc_variant = alm_variant, dc_variant, rmc_variant
        self.use_alm, self.use_dc, self.use_rmc = (v != "none" for v in (alm_variant, dc_variant, rmc_variant))
        # One SPyNet serves the base branch (blurry <-> blurry) and RMC (blurry -> reference).
        self.spynet = SPyNet(spynet_weights)
        self.base = BidirectionalPropagation(c, propagation_blocks)
        self.encoder_blur = ConvResidualBlocks(3, c, encoder_blocks)
        self.encoder_ref = ConvResidualBlocks(3, c, encoder_blocks)  # unshared: the lenses differ
        # The paper's modules are always constructed first (same random-number use as before variants
        # existed, so a seed gives the default model the same weights); stand-ins are sized on them.
        alm = ALM(c, top_k, chunk_size, alm_temperature, mode=alm_mode, window=alm_window,
                  learnable_temperature=alm_learnable_temperature)
        self.alm = {
            "topk": lambda: alm,
            "none": lambda: StandIn(c, count(alm)),
            "concat_ca": lambda: ConcatChannelAttention(c, ca_reduction),
            "dat": lambda: DeformableAttention(c, dat_groups, dat_kernel_size, chunk_size),
            "masa": lambda: MASAMatching(c, masa_scale, masa_radius, chunk_size),
        }[alm_variant]()
        dc = DifferenceCompensation(c, dc_blocks, use_ref=dc_use_ref)
        self.dc = {
            "dc": lambda: dc,
            "none": lambda: StandIn(c, count(dc)),
            "concat_ca": lambda: ConcatChannelAttention(c, ca_reduction),
        }[dc_variant]()
        rmc = ReferenceMotionCompensation(c, rmc_refine_blocks, refine=rmc_refine, warp=rmc_warp)
        self.rmc = {
            "rmc": lambda: rmc,
            "none": lambda: StandIn(c, count(rmc)),
            "concat_res": lambda: ConcatResidualCompensation(c, concat_res_blocks),
            "pcd": lambda: PCDMotionCompensation(c, pcd_groups, pcd_levels),
        }[rmc_variant]()
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
        if self.use_dc:
            f_dc = self.dc(f_b, f_ref if self.dc_input == "ref" else f_alm)
        else:
            f_dc = self.dc(f_b, f_ref)  # stand-ins see [F^B, F^Ref]
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
