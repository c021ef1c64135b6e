"""DBN / DeBlurNet (Su et al., "Deep Video Deblurring for Hand-held Cameras", CVPR 2017), a
multi-frame baseline of Table 1 (15.3 M parameters in the paper; 15.30 M here).

Written from the authors' Torch7 model (shuochsu/DeepVideoDeblurring,
`models/model2_symskip_nngraph2_deeper.lua`) and the architecture table of the paper:

  * input: 5 neighbouring blurry frames stacked along the channels (15 channels), no alignment;
  * encoder-decoder: F0 = 5x5 conv to 64; three stages, each a stride-2 3x3 conv followed by 3x3 convs
    (64 -> 128, 128; 256, 256, 256, 256; 512 x 4); three 4x4 stride-2 transposed convs back up
    (512 -> 256, 256 -> 128, 64 -> 64) with 3x3 convs in between (256 x 3; 128, 64; 15, 3);
  * every conv is followed by batch normalisation (eps 1e-3) and ReLU (not the last one: BN only); the
    decoder adds the encoder features of the same scale (skip connections, then ReLU);
  * output: `sigmoid(centre frame + F15)` (`output_sigmoid=True`, the official model). The public
    PyTorch ports (e.g. ljzycmd/SimDeblur's DBN) drop the sigmoid and return `centre + F15`, a plain
    residual: `output_sigmoid=False`. Only that form can start as the identity (`identity_start`).

Adaptations for the benchmark interface: the network restores every frame t of the clip from the
window t-2..t+2 (clip ends reflected, then clamped when the clip is shorter than the window, see
`window_indices`), all windows in one batch; `ref` is ignored. Inputs are padded at the bottom/right
to a multiple of 8 (three stride-2 stages; at least 16) and cropped back: zeros by default, as the
official `inference.lua`, or `pad_mode="replicate"`. Convs that feed a batch norm carry no bias: in
training the norm subtracts the batch mean, which cancels a bias exactly, and in evaluation an official
bias b folds exactly into the running mean (mean - b). In the residual form the last batch-norm scale
starts at zero, so the untrained network returns the centre frame (an initialisation choice).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import ConfigError
from asled.models.blocks import pad_to_multiple

PAD_MODES = ("constant", "replicate")

BN_EPS = 1e-3  # as the Torch7 original


FRAME_PADDINGS = ("replicate", "reflection", "reflection_circle", "circle")  # BasicSR's names


def window_indices(num_frames: int, window: int, padding: str = "reflection") -> torch.Tensor:
    """`[num_frames, window]` frame indices of the sliding window centred on every frame.

    Out-of-range neighbours follow BasicSR's `generate_frame_indices` (centre 0, window 5):
    "replicate" repeats the edge frame ([0, 0, 0, 1, 2]), "reflection" mirrors without repeating it
    ([2, 1, 0, 1, 2]), "reflection_circle" ([4, 3, 0, 1, 2]) and "circle" ([3, 4, 0, 1, 2]) wrap from the
    window's other side. Indices a clip too short for the mode cannot supply (e.g. T = 1) clamp to its ends.
    """
    if padding not in FRAME_PADDINGS:
        raise ConfigError(f"frame padding {padding!r} is not one of {FRAME_PADDINGS} (BasicSR's `padding` option)")
    half = window // 2
    last = num_frames - 1
    rows = []
    for centre in range(num_frames):
        row = []
        for i in range(centre - half, centre + half + 1):
            if 0 <= i <= last:
                j = i
            elif padding == "replicate":
                j = 0 if i < 0 else last
            elif padding == "reflection":
                j = -i if i < 0 else 2 * last - i
            elif padding == "reflection_circle":
                j = centre + half - i if i < 0 else centre - half - (i - last)
            else:  # circle
                j = window + i if i < 0 else i - window
            row.append(min(max(j, 0), last))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, transposed: bool = False):
        if transposed:  # 4x4 stride 2: exact 2x upsampling
            conv = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
        super().__init__(conv, nn.BatchNorm2d(cout, eps=BN_EPS))


class DBN(nn.Module):
    """`forward(blur, ref=None) -> restored`, `[B, T, 3, H, W]`; each frame from its 5-frame window."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("last.1",)

    uses_reference = False

    def __init__(self, num_frames: int = 5, channels: int = 64, output_sigmoid: bool = True,
                 pad_mode: str = "constant"):
        super().__init__()
        if num_frames < 1 or num_frames % 2 == 0:
            raise ValueError(f"DBN: num_frames must be a positive odd number, got {num_frames}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"DBN: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.num_frames = num_frames
        self.output_sigmoid = output_sigmoid
        self.pad_mode = pad_mode
        if output_sigmoid:
            # read by asled.models.registry.identity_start: no weights make sigmoid(x + F15) equal x
            self.identity_start_error = (
                "ends with sigmoid(centre + F15) (output_sigmoid: true, the official model), which no "
                "weights make the identity; add `output_sigmoid: false` (the SimDeblur residual form) to "
                "its kwargs, or remove identity_start")
        c, cin = channels, 3 * num_frames
        self.f0 = ConvBN(cin, c, kernel=5)
        # Encoder: (stride-2 conv, then 3x3 convs) per stage.
        self.down1 = nn.ModuleList([ConvBN(c, c, stride=2), ConvBN(c, 2 * c), ConvBN(2 * c, 2 * c)])
        self.down2 = nn.ModuleList([ConvBN(2 * c, 4 * c, stride=2)] + [ConvBN(4 * c, 4 * c) for _ in range(3)])
        self.down3 = nn.ModuleList([ConvBN(4 * c, 8 * c, stride=2)] + [ConvBN(8 * c, 8 * c) for _ in range(3)])
        # Decoder: transposed conv, add the skip, then 3x3 convs.
        self.up1 = ConvBN(8 * c, 4 * c, transposed=True)
        self.dec1 = nn.ModuleList([ConvBN(4 * c, 4 * c) for _ in range(3)])
        self.up2 = ConvBN(4 * c, 2 * c, transposed=True)
        self.dec2 = nn.ModuleList([ConvBN(2 * c, 2 * c), ConvBN(2 * c, c)])
        self.up3 = ConvBN(c, c, transposed=True)
        self.dec3 = ConvBN(c, cin)
        self.last = ConvBN(cin, 3)
        if not output_sigmoid:
            nn.init.zeros_(self.last[1].weight)

    @staticmethod
    def _stage(layers: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = F.relu(layer(x))
        return x

    def restore(self, stacked: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """stacked `[N, 3*num_frames, H, W]` (H, W multiples of 8), centre `[N, 3, H, W]` -> `[N, 3, H, W]`."""
        f0 = F.relu(self.f0(stacked))
        f1 = self._stage(self.down1, f0)
        f2 = self._stage(self.down2, f1)
        f3 = self._stage(self.down3, f2)
        x = self._stage(self.dec1, F.relu(self.up1(f3) + f2))
        x = self._stage(self.dec2, F.relu(self.up2(x) + f1))
        x = F.relu(self.dec3(F.relu(self.up3(x) + f0)))
        out = self.last(x) + centre
        return torch.sigmoid(out) if self.output_sigmoid else out

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        b, t, c, h, w = blur.shape
        # At least 16 pixels so the 1/8 scale keeps 2x2 values for batch-norm statistics.
        x, _ = pad_to_multiple(blur, 8, mode=self.pad_mode)
        if min(x.shape[-2:]) < 16:
            x = F.pad(x.flatten(0, 1), (0, max(16 - x.shape[-1], 0), 0, max(16 - x.shape[-2], 0)), mode=self.pad_mode)
            x = x.view(b, t, c, *x.shape[-2:])
        idx = window_indices(t, self.num_frames).to(blur.device)  # [T, window]
        windows = x[:, idx]  # [B, T, window, 3, H', W']
        stacked = windows.flatten(2, 3).flatten(0, 1)
        centre = x.flatten(0, 1)
        out = self.restore(stacked, centre)
        return out.view(b, t, c, *out.shape[-2:])[..., :h, :w]
