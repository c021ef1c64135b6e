"""DSTNet and DBN reproduce their official forward passes (stored float64 fixtures, to 1e-9).

Each fixture in tests/fixtures/official/ holds a seeded uint8 input clip (scaled to [0, 1]), our weights
as mapped from the official model (random, non-zero; flat arrays + a JSON manifest of names and shapes,
float16 where that is exact, else float64) and the official output (float64); it was computed once outside the repository (procedure:
docs/model_card_baselines.md). No official code is in the repository.

- `dstnet.npz`: official xuboming8/DSTNet `Deblur` (basicsr/archs/deblur_arch.py and the modules it
  imports, commit d42c1e377619750d228e769e987479562f7000a9) run on CPU in float64 beside ours; its CuPy
  pixel-wise kernel replaced by a CPU transcription of the same kernel; small configuration num_feat 4,
  num_block 2, 2 CWGDN blocks (the official hard-codes 5; the first 2 kept).
- `dbn.npz`: the authors' Torch7 graph shuochsu/DeepVideoDeblurring
  models/model2_symskip_nngraph2_deeper.lua (commit c23eeac10d62ecc7dad4586f487f4c1a1260bbd0), which cannot
  run here: a float64 transcription that interprets the lua statements node by node (every
  64-multiple width scaled to 2/64), with inference.lua's zero padding to a multiple of 8; the
  official conv biases folded into our batch-norm running means. Outputs in eval (running statistics)
  and train (batch statistics) mode.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from official_fixtures import load_fixture, max_diff, with_weights

from asled.config import load_params, model_overrides
from asled.errors import ConfigError
from asled.models import build_model
from asled.tables import training_notes
from baselines.dbn import DBN
from baselines.dstnet import DSTNet

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-9


def test_dstnet_reproduces_the_official_forward():
    config, clip, state, outputs = load_fixture("dstnet")
    model = with_weights(DSTNet(**config), state).eval()
    with torch.no_grad():
        assert max_diff(model(clip), outputs["output"]) < TOL


def test_dstnet_identity_start_returns_the_input():
    torch.manual_seed(0)
    model = build_model("dstnet", num_feat=8, num_block=1, num_cwgdn=1, identity_start=True)
    clip = torch.rand(1, 2, 3, 20, 24)
    with torch.no_grad():
        assert torch.equal(model(clip), clip)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_dbn_reproduces_the_official_forward(mode):
    config, clip, state, outputs = load_fixture("dbn")
    model = with_weights(DBN(**config), state).train(mode == "train")
    with torch.no_grad():
        assert max_diff(model(clip), outputs[f"output_{mode}"]) < TOL


def test_dbn_residual_form_is_the_official_output_without_its_sigmoid():
    config, clip, state, outputs = load_fixture("dbn")
    model = with_weights(DBN(**config, output_sigmoid=False), state).eval()
    with torch.no_grad():
        assert max_diff(torch.sigmoid(model(clip)), outputs["output_eval"]) < TOL


def test_dbn_identity_start_needs_the_residual_form():
    with pytest.raises(ConfigError, match="output_sigmoid: false"):
        build_model("dbn", channels=4, identity_start=True)
    model = build_model("dbn", channels=4, output_sigmoid=False, identity_start=True)
    clip = torch.rand(1, 3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(clip), clip)


def test_demo_dbn_is_the_residual_form_and_table_notes_say_so():
    params = load_params(REPO / "params.yaml")
    assert model_overrides(params, "dbn").get("output_sigmoid") is False
    notes = " ".join(training_notes(params, ["dbn"]))
    assert "output_sigmoid=false" in notes, notes
