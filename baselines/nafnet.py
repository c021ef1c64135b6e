"""NAFNet (Chen et al., "Simple Baselines for Image Restoration", ECCV 2022), a single-image
deblurring baseline of Table 1, in its GoPro deblurring configuration (NAFNet-width64).

Written from the structure of the official code (megvii-research/NAFNet, `NAFNet_arch.py`) and its
GoPro option file (`NAFNet-width64.yml`: width 64, encoder blocks [1, 1, 1, 28], one middle block,
decoder blocks [1, 1, 1, 1]; 67.9 M parameters):

  * U-Net: 3x3 intro conv to `width` channels; each encoder level is a stack of NAF blocks followed by
    a 2x2 stride-2 conv that doubles the channels; decoder levels upsample by a bias-free 1x1 conv to
    2x channels + pixel shuffle, add the encoder skip, then apply NAF blocks; 3x3 conv to RGB plus a
    global residual to the input;
  * NAF block ("nonlinear activation free"): channel LayerNorm -> 1x1 conv (2x) -> depthwise 3x3 ->
    SimpleGate (split channels in two halves and multiply) -> simplified channel attention (global
    average pool + 1x1 conv, multiplied in) -> 1x1 conv, added with a learnt per-channel scale `beta`;
    then LayerNorm -> 1x1 conv (2x) -> SimpleGate -> 1x1 conv, added with scale `gamma`. Both scales
    start at zero, as in the official code, so every block starts as an identity (their branches'
    weights then get zero, not missing, gradients at the first step).

Adaptations for the benchmark interface: frames are restored independently (T folded into the batch)
and `ref` is ignored. Inputs are padded at the bottom/right to a multiple of 2^levels and cropped back:
zeros by default, as the official `check_image_size`, or `pad_mode="replicate"` (no dark band for the
network to see at the bottom/right edge; it changes the whole output when H or W is not a multiple).
"""

from __future__ import annotations

import torch
from torch import nn

from asled.errors import ConfigError
from asled.models.blocks import pad_to_multiple

PAD_MODES = ("constant", "replicate")


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of every pixel of `[N, C, H, W]`, with per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused reduction and rsqrt: about twice as fast on CPU as separate mean/var/div ops.
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
        normalised = (x - mean) * torch.rsqrt(var + self.eps)
        return torch.addcmul(self.bias.view(1, -1, 1, 1), normalised, self.weight.view(1, -1, 1, 1))


def simple_gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return a * b


class NAFBlock(nn.Module):
    def __init__(self, channels: int, dw_expand: int = 2, ffn_expand: int = 2):
        super().__init__()
        dw = channels * dw_expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, dw, 1)
        self.conv2 = nn.Conv2d(dw, dw, 3, padding=1, groups=dw)
        self.sca = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(dw // 2, dw // 2, 1))
        self.conv3 = nn.Conv2d(dw // 2, channels, 1)
        ffn = channels * ffn_expand
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = nn.Conv2d(channels, ffn, 1)
        self.conv5 = nn.Conv2d(ffn // 2, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = simple_gate(self.conv2(self.conv1(self.norm1(inp))))
        x = self.conv3(x * self.sca(x))
        y = inp + x * self.beta
        x = self.conv5(simple_gate(self.conv4(self.norm2(y))))
        return y + x * self.gamma


class NAFNet(nn.Module):
    """NAFNet U-Net restoring each frame on its own (reference-free)."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("ending",)

    uses_reference = False

    def __init__(
        self,
        width: int = 64,
        enc_blocks: tuple[int, ...] | list[int] = (1, 1, 1, 28),
        middle_blocks: int = 1,
        dec_blocks: tuple[int, ...] | list[int] = (1, 1, 1, 1),
        pad_mode: str = "constant",
    ):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ConfigError(f"NAFNet: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}; "
                              "fix the model's kwargs in asled/models/catalog.yaml")
        self.pad_mode = pad_mode
        if len(enc_blocks) != len(dec_blocks):
            raise ConfigError(
                f"NAFNet: enc_blocks {list(enc_blocks)} and dec_blocks {list(dec_blocks)} need the same length; "
                "fix the model's kwargs in asled/models/catalog.yaml"
            )
        self.intro = nn.Conv2d(3, width, 3, padding=1)
        self.ending = nn.Conv2d(width, 3, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        self.decoders, self.ups = nn.ModuleList(), nn.ModuleList()
        chan = width
        for num in enc_blocks:
            self.encoders.append(nn.Sequential(*(NAFBlock(chan) for _ in range(num))))
            self.downs.append(nn.Conv2d(chan, 2 * chan, 2, stride=2))
            chan *= 2
        self.middle = nn.Sequential(*(NAFBlock(chan) for _ in range(middle_blocks)))
        for num in dec_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(chan, 2 * chan, 1, bias=False), nn.PixelShuffle(2)))
            chan //= 2
            self.decoders.append(nn.Sequential(*(NAFBlock(chan) for _ in range(num))))
        self.multiple = 2 ** len(enc_blocks)

    def restore(self, image: torch.Tensor) -> torch.Tensor:
        """`[N, 3, H, W]` with H, W multiples of `self.multiple` -> restored image."""
        x = self.intro(image)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            x = decoder(up(x) + skip)
        return self.ending(x) + image

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"NAFNet expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        frames, (h, w) = pad_to_multiple(blur.flatten(0, 1), self.multiple, mode=self.pad_mode)
        return self.restore(frames)[..., :h, :w].reshape(blur.shape)
