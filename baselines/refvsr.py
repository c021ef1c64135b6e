"""RefVSR (Lee et al., CVPR 2022; codeslake/RefVSR), fed the prepared ultra-wide reference.

Configurations (catalogue): `refvsr` is the released "Ours-IR" model (`config_RefVSR_IR_MFID.py`,
`models/archs/RefVSR_IR.py`): 36 channels, 30 residual blocks per direction, IconVSR-style information
refill from EDVR-M features at every 5th frame, and a forward trunk that also reads the backward
branch's LR state; its 4,774,134 trainable parameters (SPyNet frozen) are the paper's 4.8 M.
`refvsr_x4` is the released x4 model ("Ours", `config_RefVSR_MFID.py`, `models/archs/RefVSR.py`):
48 channels, 30 blocks, no refill. Both: matching kernel 2, SPyNet flow, VGG19 conv1_1/conv1_2 matching
features (`baselines.refvsr_alignment`).

Two-level layout, same resolution ratios as RefVSR: the reference has twice the resolution of the
low-resolution (LR) level and an upsampling level (UP) at the reference's resolution feeds a final x2
upsampler. Here the reference is the prepared UW frame at the blurry frame's size H x W, so the LR level
is the blurry frame bicubically downsampled x2 (H/2 x W/2), the UP level is H x W, and the final
pixel-shuffle upsampler becomes a same-resolution 3x3 conv (as the AsLeD-Net paper did for its SR
baselines). Output = reconstruction + the full-resolution blurry frame.

Per frame: matching (index and confidence maps), reference features (conv-conv + 4 residual blocks at
H x W, stride-2 conv-conv + 4 residual blocks at H/2), level-1 alignment copies the matched reference
feature, level-2 alignment copies and resamples the matched 2x2 patch (`AlignedConv`). Recurrence,
backward over the clip then forward: the LR state, the UP state and the propagated confidence are
warped to the current frame; at keyframes (IR) the LR state is fused with the refill features; the
trunk (conv + residual blocks) updates the LR state from [LR frame, (IR, forward: the backward LR
state,) state]; the reference alignment and propagation module (RAP) fuses the aligned reference
features into both levels under confidence gates, and the confidence becomes the running maximum.
Reconstruction: backward and forward UP states merged (1x1 conv plus a confidence-gated fusion), 4
residual blocks, conv (replacing the x2 upsampler), conv_hr, conv_last.

Kept as the official code computes them, each a catalogue kwarg (docs/model_card_baselines.md):
`warp: official` (its warp is not the identity at zero flow, D1), and in the forward branch
`forward_up_from: lr_state` (the UP state is rebuilt from the warped LR state) and `forward_aux_flow`
(the flow that moves the UP state and the confidence: `backward_last` in RefVSR_IR.py, `current` in
RefVSR.py). Adaptations: every frame is restored in one bidirectional pass (the official restores the
centre frame of a window; for that frame the two agree); the state-independent reference alignment is
computed once per frame; SPyNet trains by default (the official freezes a pretrained one:
`freeze_spynet`); clips shorter than 5 frames get a mirrored refill window (the official needs 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import ConfigError
from asled.models.blocks import (
    ConvResidualBlocks,
    LeakyResidualBlock,
    conv1x1,
    conv3x3,
    flow_warp,
    pad_to_multiple,
)
from baselines._propagation import PixelShuffleUp, adjacent_flows, build_spynet
from baselines.refvsr_alignment import (
    AlignedConv,
    FeatureMatching,
    conv_act,
    gather_patches,
    gather_pixels,
    official_warp,
)
from baselines.refvsr_refill import RefillExtractor, keyframes

WARPS = {"official": official_warp, "basicvsr": flow_warp}
FORWARD_UP_FROM = ("lr_state", "up_state")
FORWARD_AUX_FLOWS = ("backward_last", "current")


def lrelu(x: torch.Tensor, slope: float = 0.1) -> torch.Tensor:
    return F.leaky_relu(x, slope)


def up_flow(flow: torch.Tensor) -> torch.Tensor:
    """An LR-level flow at the UP level: bilinear x2 (align_corners=True), values x2, as the official."""
    return F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0


class ResList(nn.Module):
    """`num_blocks` leaky residual blocks (RefVSR's / DCSR's ResBlock), a tail conv, and a long skip (RefVSR's ResList)."""

    def __init__(self, num_blocks: int, channels: int):
        super().__init__()
        self.blocks = nn.Sequential(*(LeakyResidualBlock(channels, 0.2) for _ in range(num_blocks)))
        self.conv_tail = conv3x3(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_tail(self.blocks(x))


def _check_options(warp: str, forward_up_from: str, forward_aux_flow: str) -> None:
    for key, value, allowed in (("warp", warp, tuple(WARPS)), ("forward_up_from", forward_up_from, FORWARD_UP_FROM),
                                ("forward_aux_flow", forward_aux_flow, FORWARD_AUX_FLOWS)):
        if value not in allowed:
            raise ConfigError(f"refvsr: kwarg {key} must be one of {allowed}, got {value!r}")
    if warp == "basicvsr" and forward_up_from == "lr_state":
        raise ConfigError(
            "refvsr: forward_up_from: lr_state samples the LR state on the UP grid, which only the official warp "
            "does; with warp: basicvsr set forward_up_from: up_state (warp the UP state, as the backward branch)"
        )


class RefVSR(nn.Module):
    """`forward(blur, ref) -> restored` on `[B, T, 3, H, W]`; `ref` is the prepared UW reference clip."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("conv_last",)

    uses_reference = True

    def __init__(
        self,
        mid_channels: int = 36,
        num_blocks: int = 30,
        information_refill: bool = True,
        keyframe_stride: int = 5,
        refill_channels: int = 64,
        refill_blocks: int = 5,
        warp: str = "official",
        forward_up_from: str = "lr_state",
        forward_aux_flow: str = "backward_last",
        chunk_size: int = 4096,
        spynet_weights: str | None = None,
        freeze_spynet: bool = False,
        vgg_weights: str | None = None,
    ):
        super().__init__()
        _check_options(warp, forward_up_from, forward_aux_flow)
        c = self.channels = mid_channels
        self.warp, self.forward_up_from, self.forward_aux_flow = WARPS[warp], forward_up_from, forward_aux_flow
        self.freeze_spynet = freeze_spynet
        self.keyframe_stride = keyframe_stride if information_refill else None
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
        if information_refill:
            self.refill = RefillExtractor(refill_channels, refill_blocks)
            self.backward_fusion = conv3x3(refill_channels + c, c)
            self.forward_fusion = conv3x3(refill_channels + c, c)
        self.backward_resblocks = ConvResidualBlocks(c + 3, c, num_blocks)
        # The IR forward trunk also reads the backward branch's LR state (IconVSR's coupled propagation).
        self.forward_resblocks = ConvResidualBlocks((2 if information_refill else 1) * c + 3, c, num_blocks)
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

    def _warp_states(self, state, state_up, conf_prop, flow, clip: dict, backward: bool):
        """The recurrent states brought onto the current frame. Backward branch: each warped with `flow`.
        The official forward branch instead rebuilds the UP state from the warped LR state (`lr_state`)
        and moves the UP state and the confidence with `backward_last`, the flow its backward loop used last
        (RefVSR_IR.py), or with `flow` (`current`, RefVSR.py)."""
        aux = flow
        if not backward and self.forward_aux_flow == "backward_last":
            aux = clip["to_earlier"][:, 0]
        state = self.warp(state, flow)
        source_up = state if not backward and self.forward_up_from == "lr_state" else state_up
        return state, self.warp(source_up, up_flow(aux)), self.warp(conf_prop, aux)

    def _rap(self, state, state_up, conf_prop, clip: dict, i: int):
        """The reference alignment and propagation module at frame i, both levels, and the running confidence."""
        conf = clip["conf"][:, i]
        gate = self.conf_fusion(torch.cat([conf_prop, conf], dim=1))
        state = self.feat_decoder(state + gate * self.feat_fusion(torch.cat([state, clip["aligned1"][:, i]], dim=1)))
        state_up = self.feat_fusion2_1(torch.cat([state_up, self.upsample1(state)], dim=1))
        gate = self.conf_fusion2(torch.cat([self._up(conf_prop), self._up(conf)], dim=1))
        state_up = self.feat_decoder2(state_up + gate * self.feat_fusion2(torch.cat([state_up, clip["aligned2"][:, i]], dim=1)))
        return state, state_up, torch.maximum(conf_prop, conf)

    def _propagate(self, clip: dict, backward: bool, coupled: list | None = None) -> dict[str, list]:
        """One direction over the clip: per-frame LR states, UP states and propagated confidences, in time order."""
        lr = clip["lr"]
        b, t, _, h, w = lr.shape
        trunk = self.backward_resblocks if backward else self.forward_resblocks
        fusion = getattr(self, "backward_fusion" if backward else "forward_fusion", None)
        state = lr.new_zeros(b, self.channels, h, w)
        state_up = lr.new_zeros(b, self.channels, 2 * h, 2 * w)
        conf_prop = lr.new_zeros(b, 1, h, w)
        out = {"lr": [None] * t, "up": [None] * t, "conf": [None] * t}
        for step, i in enumerate(range(t - 1, -1, -1) if backward else range(t)):
            if step > 0:
                flow = clip["to_earlier"][:, i] if backward else clip["to_later"][:, i - 1]
                state, state_up, conf_prop = self._warp_states(state, state_up, conf_prop, flow, clip, backward)
            if i in clip["refill"]:
                state = fusion(torch.cat([state, clip["refill"][i]], dim=1))
            inputs = [lr[:, i], state] if coupled is None else [lr[:, i], coupled[i], state]
            state, state_up, conf_prop = self._rap(trunk(torch.cat(inputs, dim=1)), state_up, conf_prop, clip, i)
            out["lr"][i], out["up"][i], out["conf"][i] = state, state_up, conf_prop
        return out

    def _clip_inputs(self, lr: torch.Tensor, refs: torch.Tensor, b: int, t: int) -> dict:
        """Flows, matching and the state-independent reference alignment of every frame, per clip `[B, T, ...]`."""
        h, w = lr.shape[-2:]
        lr_clip = lr.view(b, t, 3, h, w)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_spynet):
            to_earlier, to_later = adjacent_flows(lr_clip, self.spynet)
        conf, index = self.feature_match(lr, refs)
        ref_feat = self.res1(self.ref_encoder1(refs))  # [BT, C, H, W]
        ref_feat_down = self.res2(self.ref_encoder2(ref_feat))  # [BT, C, h, w]
        aligned1 = gather_pixels(ref_feat_down, index)
        aligned2 = self.align2(gather_patches(ref_feat, index), lr, gather_patches(refs, index))
        per_clip = lambda x: x.view(b, t, *x.shape[1:])
        refill = self.refill(lr_clip, keyframes(t, self.keyframe_stride)) if self.keyframe_stride else {}
        return {"lr": lr_clip, "conf": per_clip(conf), "aligned1": per_clip(aligned1), "aligned2": per_clip(aligned2),
                "to_earlier": to_earlier, "to_later": to_later, "refill": refill}

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
        lr = F.interpolate(blur_p.flatten(0, 1), scale_factor=0.5, mode="bicubic", align_corners=False).clamp(0, 1)
        clip = self._clip_inputs(lr, ref_p.flatten(0, 1), b, t)
        bw = self._propagate(clip, backward=True)
        fw = self._propagate(clip, backward=False, coupled=bw["lr"] if self.keyframe_stride else None)
        stack = lambda states: torch.stack(states, dim=1).flatten(0, 1)
        both = torch.cat([stack(bw["up"]), stack(fw["up"])], dim=1)
        gate = self.conf_fusion_bwfw(torch.cat([self._up(stack(bw["conf"])), self._up(stack(fw["conf"]))], dim=1))
        x = self.feat_decoder_bwfw(self.fusion_up(both) + gate * self.feat_fusion_bwfw(both))
        x = lrelu(self.upconv2(x))
        x = lrelu(self.conv_hr(x))
        out = self.conv_last(x).view(b, t, 3, hh, ww)[..., :h0, :w0]
        return blur + out
