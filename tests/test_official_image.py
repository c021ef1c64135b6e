"""MIMO-UNet, MIMO-UNet+, NAFNet, Restormer and IFIRNN reproduce their official forward passes (stored float64
fixtures, to 1e-9), with their catalogue defaults.

Each fixture in tests/fixtures/official/ (format: tests/official_fixtures.py) was computed once, outside the
repository, by the official network carrying our weights (random, non-zero, on a 1/256 grid so float16
holds them exactly) mapped by name, on the stored seeded input. Small configurations (the fixture's
`config`, applied over the catalogue entry) that still run every layer type. The file and commit each
came from are in the fixture (`official`, `commit`):

- `mimo_unet.npz`, `mimo_unet_pp.npz`: chosj95/MIMO-UNet `models/MIMOUNet.py` (`MIMOUNet`, `MIMOUNetPlus`)
  and `models/layers.py`, commit 5c580135ed1c03344ac9c741267324ff90b5f209; its hard-coded
  `base_channel = 32` set to 4 (the only edit), num_res 1 and 2; evaluation mode (MIMO-UNet+'s channel
  dropout is then the identity). All three scales' outputs are stored.
- `nafnet.npz`: megvii-research/NAFNet `basicsr/models/archs/NAFNet_arch.py` (`NAFNet`, with
  `arch_util.LayerNorm2d`), commit 2b4af71ebe098a92a75910c233a3965a3e93ede4; width 3, one block per level,
  4 levels; 21x27 frames, so its zero padding to a multiple of 16 (`check_image_size`) is exercised.
- `restormer.npz`: swz30/Restormer `basicsr/models/archs/restormer_arch.py` (`Restormer`), commit
  df766d5521afd21cce56e24159f300b30ebf3fb0, dim 4, one block per level; the input reflect-padded to a
  multiple of 8 and cropped back as `Motion_Deblurring/test.py` does; 13x21 frames, so the padding is
  exercised.
- `ifirnn.npz`: the PyTorch port ljzycmd/SimDeblur `simdeblur/model/backbone/ifirnn/ifirnn.py` (`IFIRNN`,
  dual cell, 3 intra-frame iterations), commit 0a6da06beda9c62aebc0f049360ab80986acfc26, inner channels 1;
  3 frames, so the hidden state is carried.

Procedure and the measured full-size figures: docs/model_card_baselines.md.
"""

from __future__ import annotations

import pytest
import torch
from official_fixtures import load_fixture, max_diff, with_weights

from asled.models import build_model

TOL = 1e-9
METHODS = ["mimo_unet", "mimo_unet_pp", "nafnet", "restormer", "ifirnn"]


def fixture_model(name: str, **kwargs) -> tuple[torch.nn.Module, torch.Tensor, dict]:
    """The catalogue entry at the fixture's small configuration (plus `kwargs`), fixture weights, eval mode."""
    config, clip, state, outputs = load_fixture(name)
    model = with_weights(build_model(name, **config, **kwargs), state).eval()
    return model, clip, outputs


@pytest.mark.parametrize("name", METHODS)
def test_reproduces_the_official_forward(name):
    model, clip, outputs = fixture_model(name)
    with torch.no_grad():
        assert max_diff(model(clip), outputs["output"]) < TOL


@pytest.mark.parametrize("name", ["mimo_unet", "mimo_unet_pp"])
def test_mimo_unet_coarse_outputs_match_too(name):
    model, clip, outputs = fixture_model(name)
    with torch.no_grad():
        quarter, half, _ = model.restore_multiscale(clip.flatten(0, 1))
    assert max_diff(half, outputs["output_half"]) < TOL
    assert max_diff(quarter, outputs["output_quarter"]) < TOL


@pytest.mark.parametrize(("name", "kwargs"), [
    ("nafnet", {"pad_mode": "replicate"}),
    ("restormer", {"pad_mode": "replicate"}),
    ("ifirnn", {"initial_hidden": "zeros"}),
])
def test_documented_alternatives_leave_the_official_output(name, kwargs):
    """The kept alternatives (catalogue kwargs, docs/model_card_baselines.md) are not the official forward:
    replicate padding changes the whole frame when its size is not a multiple of the padding unit."""
    model, clip, outputs = fixture_model(name, **kwargs)
    with torch.no_grad():
        assert max_diff(model(clip), outputs["output"]) > 1e-3


def test_restormer_refuses_a_frame_too_small_to_mirror():
    model = build_model("restormer", dim=4, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1)
    with pytest.raises(ValueError, match="pad_mode: replicate"):
        model(torch.rand(1, 1, 3, 3, 16))
    replicate = build_model("restormer", dim=4, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                            pad_mode="replicate")
    assert replicate(torch.rand(1, 1, 3, 3, 16)).shape == (1, 1, 3, 3, 16)
