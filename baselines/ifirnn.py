"""IFIRNN (Nah, Son & Lee, "Recurrent Neural Networks with Intra-Frame Iterations for Video
Deblurring", CVPR 2019), the recurrent baseline of Table 1 (4.1 M parameters in the paper; 4.11 M here).

The authors released no code. The structure follows the paper (an RNN cell of feature extraction F_B,
residual blocks F_R, hidden-state head F_H and reconstruction F_L; "C2H3": two cells, three intra-frame
iterations) at the widths of the public PyTorch port in ljzycmd/SimDeblur (`inner_channels: 16`,
`dual_cell: true`, `intra_iters: 3`), which is the configuration that gives the paper's 4.1 M:

  * F_B: three 3x3 convs, 3 -> c -> 2c (stride 2) -> 4c (stride 2), c = 16: features at 1/4 scale;
  * F_R: six residual blocks (conv-ReLU-conv + identity) on [F_B(frame), hidden] (8c = 128 channels);
  * F_H: 3x3 conv 8c -> 4c, one residual block, 3x3 conv: the next hidden state (4c channels);
  * F_L (second cell only): two 4x4 stride-2 transposed convs 8c -> 4c -> c and a 3x3 conv to RGB.
  F_B and F_L are plain conv stacks without activations, as in the port.

Per frame, the first cell runs once on (frame, previous hidden state), then the second cell runs three
times on (frame, updated hidden state); its last iteration's F_L output is the restored frame. The
hidden state is carried forward through the clip (causal, one direction). As in the port, the output is
the reconstruction itself, with no global residual to the input frame.

At a clip's first frame there is no hidden state yet: as in the port, the first cell then takes its own
features in its place ([F_B(frame), F_B(frame)]; `initial_hidden="features"`), or, with
`initial_hidden="zeros"`, a zero hidden state.

Adaptations for the benchmark interface: `ref` is ignored; inputs are replicate-padded to a multiple of 4
(two stride-2 convs) and cropped back (the port has no padding).
"""

from __future__ import annotations

import torch
from torch import nn

from asled.models.blocks import ResidualBlock, conv3x3, pad_to_multiple

INITIAL_HIDDEN = ("features", "zeros")


class RNNCell(nn.Module):
    """One IFIRNN cell; `with_output=False` for the first cell of a dual-cell model (no F_L)."""

    def __init__(self, channels: int = 16, num_blocks: int = 6, with_output: bool = True):
        super().__init__()
        c = channels
        self.f_b = nn.Sequential(
            conv3x3(3, c),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
            nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1),
        )
        self.f_r = nn.Sequential(*(ResidualBlock(8 * c) for _ in range(num_blocks)))
        self.f_h = nn.Sequential(conv3x3(8 * c, 4 * c), ResidualBlock(4 * c), conv3x3(4 * c, 4 * c))
        self.f_l = (
            nn.Sequential(
                nn.ConvTranspose2d(8 * c, 4 * c, 4, stride=2, padding=1),
                nn.ConvTranspose2d(4 * c, c, 4, stride=2, padding=1),
                conv3x3(c, 3),
            )
            if with_output
            else None
        )

    def forward(
        self, frame: torch.Tensor, hidden: torch.Tensor | None, emit: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """`hidden=None` (a clip's first step, `initial_hidden="features"`): the frame's features stand in."""
        feat = self.f_b(frame)
        feat = self.f_r(torch.cat([feat, feat if hidden is None else hidden], dim=1))
        out = self.f_l(feat) if emit else None
        return out, self.f_h(feat)


class IFIRNN(nn.Module):
    """`forward(blur, ref=None) -> restored`, `[B, T, 3, H, W]`, frames processed in temporal order."""

    # the output layer, zeroed by `identity_start` (asled.models.registry; needs global_residual=True)
    output_layers = ("cell.f_l.2",)

    uses_reference = False

    def __init__(
        self, channels: int = 16, num_blocks: int = 6, dual_cell: bool = True, intra_iters: int = 3,
        global_residual: bool = False, initial_hidden: str = "features",
    ):
        """`global_residual=True` adds the blurry frame to the cell's output (not in the official model,
        which predicts the sharp frame directly; a demo option so that `identity_start` can start it at
        the identity, see docs/model_card_baselines.md). `initial_hidden`: what stands in for the hidden
        state at a clip's first frame, "features" (the port's) or "zeros"."""
        super().__init__()
        if initial_hidden not in INITIAL_HIDDEN:
            raise ValueError(f"IFIRNN: initial_hidden must be one of {INITIAL_HIDDEN}, got {initial_hidden!r}; "
                             "fix the model's kwargs in asled/models/catalog.yaml")
        self.initial_hidden = initial_hidden
        self.global_residual = global_residual
        if intra_iters < 1:
            raise ValueError(f"IFIRNN: intra_iters must be >= 1, got {intra_iters}")
        self.channels = channels
        self.intra_iters = intra_iters
        # Dual cell: a first cell without reconstruction head, then the iterated cell that emits frames.
        self.first_cell = RNNCell(channels, num_blocks, with_output=False) if dual_cell else None
        self.cell = RNNCell(channels, num_blocks, with_output=True)

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _, h, w = blur.shape
        x, _ = pad_to_multiple(blur, 4)
        hp, wp = x.shape[-2:]
        hidden = x.new_zeros(b, 4 * self.channels, hp // 4, wp // 4) if self.initial_hidden == "zeros" else None
        outputs = []
        for i in range(t):
            frame = x[:, i]
            if self.first_cell is not None:
                _, hidden = self.first_cell(frame, hidden, emit=False)
            for j in range(self.intra_iters):
                out, hidden = self.cell(frame, hidden, emit=j == self.intra_iters - 1)
            outputs.append(out + frame if self.global_residual else out)
        return torch.stack(outputs, dim=1)[..., :h, :w]
