"""BasicVSR, BasicVSR++ (both configurations) and EDVR reproduce the official forward to 1e-9 in float64.

The fixtures in tests/fixtures/official/ were computed once, outside the repository, by the official
networks of XPixelGroup/BasicSR (commit 8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a), run unmodified on CPU
in float64 with the weights `random_weights` builds here (every parameter non-zero, so no
zero-initialised layer hides a difference) mapped by name, on the inputs built here:

- `basicvsr.npz`: `basicsr/archs/basicvsr_arch.py` `BasicVSR` with its `SpyNet` (`spynet_arch.py`);
  64 channels, 1 block per direction, 2 frames of 34x36 (both SPyNets resize them to 64x64). The
  paper's adaptation applied to it from outside: `upconv1`/`upconv2` -> 3x3 convs 64 -> 64, pixel
  shuffle -> identity, x4 bilinear base -> the input frame.
- `basicvsr_pp.npz`: `basicsr/archs/basicvsrpp_arch.py` `BasicVSRPlusPlus` (BasicSR's port of mmagic's
  `BasicVSRPlusPlusNet`; its forward was diffed against mmagic's: the same operations),
  `is_low_res_input=True`, upsampler swapped as above and `img_upsample` -> identity; 64 channels,
  1 block, 3 frames of 16x20.
- `basicvsr_pp_deblur.npz`: the same class with `is_low_res_input=False` (the authors' deblurring
  layout, nothing swapped); 3 frames of 64x80 (features at 16x20); every 2nd pixel stored.
  In both BasicVSR++ fixtures SPyNet is swapped for the same cheap stand-in flow net in both networks
  (`StandInFlow` of tests/test_official_refvsr.py: flows of a few pixels; SPyNet itself is the one
  `basicvsr.npz` checks), and the official `assert` that the flow input is at least 64 pixels was off
  (python -O). The port builds its alignment only when CUDA is present; it was built with that check
  answered yes and runs `torchvision.ops.deform_conv2d` on CPU.
- `edvr.npz`: `basicsr/archs/edvr_arch.py` `EDVR` (hr_in, pre-deblur, TSA), num_feat 8, 2 deformable
  groups, 1 + 1 blocks; each of 4 frames of 32x32 restored from the 5-frame window of
  `basicsr/data/data_util.py` `generate_frame_indices(..., padding='replicate')`, as the official test
  options (`options/test/EDVR/test_EDVR_L_deblur_REDS.yml`) do.

Deformable convolutions run `torchvision.ops.deform_conv2d` in the official code too (BasicSR's
`DCNv2Pack` on torchvision >= 0.9 and its BasicVSR++ port); mmcv's op, which mmagic uses, takes the same
offset layout. Each file holds the official output (every `stored_stride`-th pixel), the full output's
sum and sum of squares, the seeds, the input shape and a checksum of the weights. The full-size
catalogue configurations were compared the same way once (model card). Procedure:
docs/model_card_baselines.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_official_refvsr import StandInFlow  # tests/ is on sys.path, as for model_checks
from torch import nn

from asled.config import load_params, model_overrides
from asled.errors import ConfigError
from asled.models import build_model
from asled.tables import training_notes
from baselines.dbn import window_indices

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "official"


def random_weights(model: nn.Module, seed: int, gain: float) -> float:
    """numpy PCG64 in `named_parameters` order: U(-a, a), a = gain * sqrt(3 / fan_in) for weights and 0.1
    for biases; SPyNet's last conv of each level x0.2 (flows of a pixel or so). Returns the sum."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            a = gain * (3.0 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1
            if name.startswith("spynet.") and ".basic_module.8." in name:
                a *= 0.2
            p.copy_(torch.from_numpy(rng.uniform(-a, a, size=tuple(p.shape))))
    return float(sum(p.detach().sum() for p in model.parameters()))


def fixture_model(name: str, **kwargs) -> tuple[np.lib.npyio.NpzFile, nn.Module, torch.Tensor]:
    data = np.load(FIXTURES / f"{name}.npz")
    meta = json.loads(str(data["meta"]))
    model = build_model(meta["model"], **meta["overrides"], **kwargs).double().eval()
    if meta["flow"] == "stand-in":
        model.spynet = StandInFlow().double()
    checksum = random_weights(model, meta["weight_seed"], meta["weight_gain"])
    assert checksum == pytest.approx(float(data["weight_checksum"]), rel=1e-12), "weights differ from the fixture's"
    clip = torch.from_numpy(np.random.default_rng(meta["input_seed"]).uniform(0, 1, size=meta["shape"]))
    return data, model, clip


@pytest.mark.parametrize("name", ["basicvsr", "basicvsr_pp", "basicvsr_pp_deblur", "edvr"])
def test_matches_the_official_network(name):
    data, model, clip = fixture_model(name)
    with torch.no_grad():
        out = model(clip).numpy()
    s = int(json.loads(str(data["meta"]))["stored_stride"])
    assert np.abs(out[..., ::s, ::s] - data["output"]).max() < 1e-9
    assert out.sum() == pytest.approx(float(data["output_sum"]), rel=1e-12, abs=1e-9)
    assert (out**2).sum() == pytest.approx(float(data["output_sumsq"]), rel=1e-12)


def test_edvr_reflection_alternative_differs():
    """`frame_padding: reflection` (mirror, the previous behaviour) leaves the official output."""
    data, model, clip = fixture_model("edvr", frame_padding="reflection")
    with torch.no_grad():
        assert np.abs(model(clip).numpy() - data["output"]).max() > 1e-4


def test_window_indices_follow_basicsr():
    """BasicSR's `generate_frame_indices` docstring examples (centre 0, 5 frames)."""
    expected = {"replicate": [0, 0, 0, 1, 2], "reflection": [2, 1, 0, 1, 2],
                "reflection_circle": [4, 3, 0, 1, 2], "circle": [3, 4, 0, 1, 2]}
    for padding, row in expected.items():
        assert window_indices(7, 5, padding)[0].tolist() == row, padding
    assert window_indices(7, 5, "replicate")[-1].tolist() == [4, 5, 6, 6, 6]
    with pytest.raises(ConfigError, match="replicate"):
        build_model("edvr", num_feat=8, frame_padding="mirror")


def test_demo_basicvsr_pp_keeps_the_deblurring_layout_and_says_so():
    params = load_params(REPO / "params.yaml")
    assert model_overrides(params, "basicvsr_pp").get("is_low_res_input") is False
    notes = " ".join(training_notes(params, ["basicvsr_pp"]))
    assert "deblurring layout (is_low_res_input=false)" in notes, notes
