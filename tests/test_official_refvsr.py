"""RefVSR reproduces the official code (codeslake/RefVSR @ dfc54b0) to 1e-9 in float64, with its catalogue defaults.

`tests/fixtures/official/refvsr_{ir,x4}.npz` were computed once, outside the repository, by the official
networks (`models/archs/RefVSR_IR.py` for `refvsr`, `models/archs/RefVSR.py` for `refvsr_x4`) carrying
the weights `random_weights` builds here (every parameter non-zero, so no zero-initialised layer hides a
difference), on the inputs built here. Small sizes (`overrides`, 24x32 frames, 5 frames) that still run
every layer type: VGG matching, aligned conv (its affine head drawn wide enough to reach the clamp and the
border taps), EDVR-M refill (PCD + TSA), both propagation directions, RAP. SPyNet is swapped for the
same cheap stand-in flow net in both (`StandInFlow`; the full-size run with SPyNet is in the model card).
Each file holds the official centre-frame output, the seeds and a checksum of the weights. Procedure
and the adaptations applied to the official network from outside: docs/model_card_baselines.md, RefVSR.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from official_fixtures import FIXTURES
from torch import nn

from asled.models import build_model
from asled.models.blocks import flow_warp
from baselines.refvsr_alignment import official_warp


class StandInFlow(nn.Module):
    """flow = 3 tanh(conv5x5([ref, supp])): flows of a few pixels at a fraction of SPyNet's cost."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(6, 2, 5, padding=2)

    def forward(self, ref: torch.Tensor, supp: torch.Tensor) -> torch.Tensor:
        return 3.0 * torch.tanh(self.conv(torch.cat([ref, supp], dim=1)))


def random_weights(model: nn.Module, seed: int, gain: float, head: float) -> float:
    """numpy PCG64 in `named_parameters` order: U(-a, a), a = gain * sqrt(3 / fan_in) for weights and 0.1
    for biases, a = `head` for the aligned conv's affine head (weight and bias). Returns the sum."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            a = gain * (3.0 / p[0].numel()) ** 0.5 if p.dim() > 1 else 0.1
            if name.startswith("align2.predict.4."):
                a = head
            p.copy_(torch.from_numpy(rng.uniform(-a, a, size=tuple(p.shape))))
    return float(sum(p.detach().sum() for p in model.parameters()))


def fixture_model(kind: str, **kwargs) -> tuple[np.ndarray, nn.Module, torch.Tensor, torch.Tensor]:
    data = np.load(FIXTURES / f"refvsr_{kind}.npz")
    meta = json.loads(str(data["meta"]))
    model = build_model(meta["model"], **meta["overrides"], **kwargs).double().eval()
    model.spynet = StandInFlow().double()
    checksum = random_weights(model, meta["weight_seed"], meta["weight_gain"], meta["affine_head_range"])
    assert checksum == pytest.approx(float(data["weight_checksum"]), rel=1e-12), "weights differ from the fixture's"
    rng = np.random.default_rng(meta["input_seed"])
    blur, ref = (torch.from_numpy(rng.uniform(0, 1, size=meta["shape"])) for _ in range(2))
    return data["centre_frame"], model, blur, ref


def centre_frame(model: nn.Module, blur: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(blur, ref)[0, blur.shape[1] // 2].numpy()


@pytest.mark.parametrize("kind", ["ir", "x4"])
def test_matches_the_official_network(kind):
    expected, model, blur, ref = fixture_model(kind)
    assert np.abs(centre_frame(model, blur, ref) - expected).max() < 1e-9


def test_d1_alternative_warp_differs():
    """The official warp resamples even at zero flow (a (W-1)/W shrink); BasicVSR's `flow_warp` does not. The
    alternative (`warp: basicvsr`, which needs `forward_up_from: up_state`) leaves the official output."""
    x = torch.rand(1, 2, 9, 12, dtype=torch.float64)
    zero = torch.zeros(1, 2, 9, 12, dtype=torch.float64)
    assert torch.allclose(flow_warp(x, zero), x, rtol=0, atol=1e-12)
    assert (official_warp(x, zero) - x).abs().max() > 1e-2
    expected, model, blur, ref = fixture_model("x4", warp="basicvsr", forward_up_from="up_state")
    assert np.abs(centre_frame(model, blur, ref) - expected).max() > 1e-3
