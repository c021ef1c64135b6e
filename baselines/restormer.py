"""Restormer (Zamir et al., "Restormer: Efficient Transformer for High-Resolution Image Restoration",
CVPR 2022), a single-image deblurring baseline of Table 1, in its default (motion deblurring)
configuration: dim 48, Transformer blocks [4, 6, 6, 8] per level, 4 refinement blocks, heads
[1, 2, 4, 8], FFN expansion 2.66, bias-free convs, LayerNorm with bias; 26.1 M parameters.

Written from the structure of the official code (swz30/Restormer, `restormer_arch.py`):

  * 3x3 conv patch embedding, then a 4-level encoder-decoder; downsampling = 3x3 conv halving the
    channels + pixel unshuffle (so channels double, size halves), upsampling = 3x3 conv doubling the
    channels + pixel shuffle; decoder levels 3 and 2 concatenate the encoder skip and reduce it with a
    1x1 conv, level 1 keeps the concatenation (2 * dim channels) and adds the refinement blocks; a 3x3
    conv to RGB plus a global residual to the input;
  * Transformer block = x + MDTA(LN(x)), then x + GDFN(LN(x)), LayerNorm over the channels of each pixel;
  * MDTA (multi-Dconv head transposed attention): 1x1 then depthwise 3x3 convs give q, k, v; attention is
    computed across channels (a C/heads x C/heads map per head, from L2-normalised q and k scaled by a
    learnt per-head temperature), so its cost is linear in the number of pixels;
  * GDFN (gated-Dconv feed-forward): 1x1 conv to 2 * hidden channels (hidden = int(2.66 * C)),
    depthwise 3x3, GELU(first half) * second half, 1x1 conv back.

Adaptations for the benchmark interface: frames are restored independently (T folded into the batch)
and `ref` is ignored. Inputs are padded at the bottom/right to a multiple of 8 (three stride-2 levels)
and cropped back: mirrored by default, as the official test script (`Motion_Deblurring/test.py`,
`F.pad(..., 'reflect')`), or `pad_mode="replicate"` (it changes the whole output when H or W is not a
multiple of 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.errors import ConfigError
from asled.models.blocks import pad_to_multiple

PAD_MODES = ("reflect", "replicate")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel; `with_bias=False` is Restormer's bias-free variant
    (scale only, and the mean is not subtracted from the output)."""

    def __init__(self, channels: int, with_bias: bool = True, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels)) if with_bias else None
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One fused reduction and rsqrt: about twice as fast on CPU as separate mean/var/div ops.
        var, mean = torch.var_mean(x, dim=1, keepdim=True, unbiased=False)
        weight = self.weight.view(1, -1, 1, 1)
        if self.bias is None:
            return x * torch.rsqrt(var + self.eps) * weight
        return torch.addcmul(self.bias.view(1, -1, 1, 1), (x - mean) * torch.rsqrt(var + self.eps), weight)


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention (attention over channels, per head)."""

    def __init__(self, channels: int, heads: int, bias: bool):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        q, k, v = (t.reshape(n, self.heads, c // self.heads, h * w) for t in qkv)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * self.temperature, dim=-1)
        return self.project_out((attn @ v).reshape(n, c, h, w))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network."""

    def __init__(self, channels: int, expansion: float, bias: bool):
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=bias)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(a) * b)


class TransformerBlock(nn.Module):
    def __init__(self, channels: int, heads: int, expansion: float, bias: bool, norm_bias: bool):
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels, norm_bias)
        self.attn = MDTA(channels, heads, bias)
        self.norm2 = ChannelLayerNorm(channels, norm_bias)
        self.ffn = GDFN(channels, expansion, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class Restormer(nn.Module):
    """Restormer encoder-decoder restoring each frame on its own (reference-free)."""

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("output",)

    uses_reference = False

    def __init__(
        self,
        dim: int = 48,
        num_blocks: tuple[int, ...] | list[int] = (4, 6, 6, 8),
        num_refinement_blocks: int = 4,
        heads: tuple[int, ...] | list[int] = (1, 2, 4, 8),
        ffn_expansion_factor: float = 2.66,
        bias: bool = False,
        layer_norm_bias: bool = True,
        pad_mode: str = "reflect",
    ):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ConfigError(f"Restormer: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}; "
                              "fix the model's kwargs in asled/models/catalog.yaml")
        self.pad_mode = pad_mode
        if len(num_blocks) != 4 or len(heads) != 4:
            raise ConfigError(
                f"Restormer: num_blocks {list(num_blocks)} and heads {list(heads)} need 4 levels each; "
                "fix the model's kwargs in asled/models/catalog.yaml"
            )

        def stage(channels: int, level: int, count: int | None = None) -> nn.Sequential:
            n = num_blocks[level] if count is None else count
            return nn.Sequential(*(
                TransformerBlock(channels, heads[level], ffn_expansion_factor, bias, layer_norm_bias) for _ in range(n)
            ))

        def down(channels: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

        def up(channels: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False), nn.PixelShuffle(2))

        # The official patch embedding is bias-free whatever `bias` says.
        self.patch_embed = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.encoder_level1 = stage(dim, 0)
        self.down1_2 = down(dim)
        self.encoder_level2 = stage(2 * dim, 1)
        self.down2_3 = down(2 * dim)
        self.encoder_level3 = stage(4 * dim, 2)
        self.down3_4 = down(4 * dim)
        self.latent = stage(8 * dim, 3)
        self.up4_3 = up(8 * dim)
        self.reduce_chan_level3 = nn.Conv2d(8 * dim, 4 * dim, 1, bias=bias)
        self.decoder_level3 = stage(4 * dim, 2)
        self.up3_2 = up(4 * dim)
        self.reduce_chan_level2 = nn.Conv2d(4 * dim, 2 * dim, 1, bias=bias)
        self.decoder_level2 = stage(2 * dim, 1)
        self.up2_1 = up(2 * dim)
        # Level 1 keeps the concatenated 2 * dim channels (no reduction), as the official model does.
        self.decoder_level1 = stage(2 * dim, 0)
        self.refinement = stage(2 * dim, 0, num_refinement_blocks)
        self.output = nn.Conv2d(2 * dim, 3, 3, padding=1, bias=bias)

    def restore(self, image: torch.Tensor) -> torch.Tensor:
        """`[N, 3, H, W]` with H, W multiples of 8 -> restored image."""
        enc1 = self.encoder_level1(self.patch_embed(image))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        x = self.latent(self.down3_4(enc3))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], dim=1)))
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], dim=1)))
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], dim=1))
        return self.output(self.refinement(x)) + image

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"Restormer expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        h, w = blur.shape[-2:]
        # a mirror cannot reach further than the frame is wide (the official script fails the same way)
        if self.pad_mode == "reflect" and (-h % 8 >= h or -w % 8 >= w):
            raise ValueError(f"Restormer: a {h}x{w} frame is too small to reflect-pad to a multiple of 8; "
                             "use pad_mode: replicate for frames this small")
        frames, (h, w) = pad_to_multiple(blur.flatten(0, 1), 8, mode=self.pad_mode)
        return self.restore(frames)[..., :h, :w].reshape(blur.shape)
