"""MIMO-UNet and MIMO-UNet+ (Cho et al., "Rethinking Coarse-to-Fine Approach in Single Image
Deblurring", ICCV 2021), a single-image deblurring baseline of Table 1.

Written from the structure of the official code (chosj95/MIMO-UNet, `models/MIMOUNet.py`):

  * three-level U-Net, 32 / 64 / 128 channels; every encoder and decoder level is a stack of
    `num_res` residual blocks (conv3x3-ReLU-conv3x3 + identity): 8 for MIMO-UNet, 20 for MIMO-UNet+
    (the paper's "MIMO-UNet++" row; 6.8 M / 16.1 M parameters);
  * multi-input: the half- and quarter-size images (nearest-neighbour downscaling) are encoded by a
    shallow convolutional module (SCM) and merged into the stride-2 encoder features by a feature
    attention module (FAM: x + conv(x * z));
  * asymmetric feature fusion (AFF): every decoder skip connection gets the encoder features of all
    three scales, resized to its level, concatenated and merged by conv1x1-ReLU-conv3x3;
  * multi-output: each decoder level predicts a restored image at its own scale (input image of that
    scale + predicted residual). MIMO-UNet+ adds channel dropout (p = 0.1) on the two AFF outputs.

Only the full-resolution output is the restoration this benchmark scores. The two coarse-scale output
convs (`convs_out.*`) only feed the original multi-scale training loss; they are declared in
`auxiliary_parameter_prefixes`, and they receive no gradient from the restored frame.

Adaptations for the benchmark interface: frames are restored independently (T folded into the batch),
`ref` is ignored, and inputs are replicate-padded to a multiple of 4 (two stride-2 levels) and cropped
back, so any H, W work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import pad_to_multiple


def basic_conv(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, relu: bool = True, transpose: bool = False
) -> nn.Sequential:
    """Conv (or stride-2 transposed conv) with bias, optionally followed by ReLU (MIMO-UNet's BasicConv)."""
    if transpose:
        # kernel 4, stride 2, padding 1 exactly doubles the size.
        conv = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2 - 1)
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
    return nn.Sequential(conv, nn.ReLU(inplace=True)) if relu else nn.Sequential(conv)


class ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(basic_conv(channels, channels, 3), basic_conv(channels, channels, 3, relu=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.main(x)


def res_stack(channels: int, num_res: int) -> nn.Sequential:
    return nn.Sequential(*(ResBlock(channels) for _ in range(num_res)))


class AFF(nn.Module):
    """Asymmetric feature fusion: concatenated multi-scale encoder features -> one level's skip."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            basic_conv(in_channels, out_channels, 1), basic_conv(out_channels, out_channels, 3, relu=False)
        )

    def forward(self, *features: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat(features, dim=1))


class SCM(nn.Module):
    """Shallow convolutional module: features of a downscaled input image, `channels` wide."""

    def __init__(self, channels: int):
        super().__init__()
        self.main = nn.Sequential(
            basic_conv(3, channels // 4, 3),
            basic_conv(channels // 4, channels // 2, 1),
            basic_conv(channels // 2, channels // 2, 3),
            basic_conv(channels // 2, channels - 3, 1),
        )
        self.conv = basic_conv(channels, channels, 1, relu=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([image, self.main(image)], dim=1))


class FAM(nn.Module):
    """Feature attention module: the SCM features gate the encoder features (x + conv(x * z))."""

    def __init__(self, channels: int):
        super().__init__()
        self.merge = basic_conv(channels, channels, 3, relu=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x + self.merge(x * z)


def _half(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=0.5, mode="nearest")


def _double(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class MIMOUNet(nn.Module):
    """MIMO-UNet (`num_res=8`) or MIMO-UNet+ (`num_res=20, aff_dropout=0.1`), frame by frame.

    `convs_out.*` produce the coarse-scale outputs used only by the original auxiliary multi-scale
    loss; they are listed in `auxiliary_parameter_prefixes` (no gradient from the restored frame).
    """

    # the layers whose output is added to the input: zeroed by `identity_start` (asled.models.registry)
    output_layers = ("feat_extract.5", "convs_out.0", "convs_out.1")

    uses_reference = False
    auxiliary_parameter_prefixes = ("convs_out.",)

    def __init__(self, num_res: int = 8, base_channels: int = 32, aff_dropout: float = 0.0):
        super().__init__()
        c = base_channels
        self.encoder = nn.ModuleList([res_stack(c, num_res), res_stack(2 * c, num_res), res_stack(4 * c, num_res)])
        self.feat_extract = nn.ModuleList([
            basic_conv(3, c, 3),
            basic_conv(c, 2 * c, 3, stride=2),
            basic_conv(2 * c, 4 * c, 3, stride=2),
            basic_conv(4 * c, 2 * c, 4, stride=2, transpose=True),
            basic_conv(2 * c, c, 4, stride=2, transpose=True),
            basic_conv(c, 3, 3, relu=False),
        ])
        self.decoder = nn.ModuleList([res_stack(4 * c, num_res), res_stack(2 * c, num_res), res_stack(c, num_res)])
        # 1x1 convs merging [upsampled decoder features, AFF skip] back to the level's width.
        self.convs = nn.ModuleList([basic_conv(4 * c, 2 * c, 1), basic_conv(2 * c, c, 1)])
        self.convs_out = nn.ModuleList([basic_conv(4 * c, 3, 3, relu=False), basic_conv(2 * c, 3, 3, relu=False)])
        self.affs = nn.ModuleList([AFF(7 * c, c), AFF(7 * c, 2 * c)])
        self.fam1, self.scm1 = FAM(4 * c), SCM(4 * c)
        self.fam2, self.scm2 = FAM(2 * c), SCM(2 * c)
        # Dropout2d has no parameters, so MIMO-UNet and MIMO-UNet+ differ in size only through num_res.
        self.drop1 = nn.Dropout2d(aff_dropout) if aff_dropout > 0 else nn.Identity()
        self.drop2 = nn.Dropout2d(aff_dropout) if aff_dropout > 0 else nn.Identity()

    def restore_multiscale(self, x: torch.Tensor) -> list[torch.Tensor]:
        """`[N, 3, H, W]` (H, W multiples of 4) -> outputs at 1/4, 1/2 and full scale."""
        x_2 = _half(x)
        x_4 = _half(x_2)
        z2 = self.scm2(x_2)
        z4 = self.scm1(x_4)

        res1 = self.encoder[0](self.feat_extract[0](x))
        z = self.fam2(self.feat_extract[1](res1), z2)
        res2 = self.encoder[1](z)
        z = self.fam1(self.feat_extract[2](res2), z4)
        z = self.encoder[2](z)

        z42 = _double(z)
        skip2 = self.drop2(self.affs[1](_half(res1), res2, z42))
        skip1 = self.drop1(self.affs[0](res1, _double(res2), _double(z42)))

        outputs = []
        z = self.decoder[0](z)
        outputs.append(self.convs_out[0](z) + x_4)
        z = self.feat_extract[3](z)
        z = self.decoder[1](self.convs[0](torch.cat([z, skip2], dim=1)))
        outputs.append(self.convs_out[1](z) + x_2)
        z = self.feat_extract[4](z)
        z = self.decoder[2](self.convs[1](torch.cat([z, skip1], dim=1)))
        outputs.append(self.feat_extract[5](z) + x)
        return outputs

    def forward(self, blur: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        if blur.dim() != 5 or blur.shape[2] != 3:
            raise ValueError(f"MIMOUNet expects blur as [B, T, 3, H, W], got {tuple(blur.shape)}")
        frames, (h, w) = pad_to_multiple(blur.flatten(0, 1), 4)
        # The coarse heads also run (two 3-channel convs at 1/4 and 1/2 size, negligible) so there is
        # one code path; only the full-scale output is the restoration.
        restored = self.restore_multiscale(frames)[-1]
        return restored[..., :h, :w].reshape(blur.shape)
