"""Loading the stored official-forward fixtures (tests/fixtures/official/*.npz), shared by the test_official_* files.

A fixture holds a seeded uint8 input (scaled to [0, 1]), our weights as mapped from the official model
(random, non-zero; flat arrays + a JSON manifest of names and shapes, float16 where that is exact, else
float64), the configuration kwargs and the official output(s) (float64). It was computed once outside the
repository (procedure: docs/model_card_baselines.md); no official code is in the repository.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "official"


def load_fixture(name: str) -> tuple[dict, torch.Tensor, dict, dict]:
    """(config kwargs, input float64 in [0, 1], our weights by name, {key: official output})."""
    data = np.load(FIXTURES / f"{name}.npz")
    config = ast.literal_eval(str(data["config"]))
    clip = torch.from_numpy(data["input_u8"].astype(np.float64) / 255.0)
    flat = {"16": data["weights16"].astype(np.float64), "64": data["weights64"]}
    start = {"16": 0, "64": 0}
    state = {}
    for layer, kind, shape in json.loads(str(data["manifest"])):  # [name, "16" | "64", shape]
        size = int(np.prod(shape))
        state[layer] = torch.from_numpy(flat[kind][start[kind]:start[kind] + size].reshape(shape))
        start[kind] += size
    assert all(start[k] == flat[k].size for k in flat), f"{name}.npz: manifest and weights disagree"
    outputs = {k: torch.from_numpy(data[k]) for k in data.files if k.startswith("output")}
    return config, clip, state, outputs


def with_weights(model: torch.nn.Module, state: dict) -> torch.nn.Module:
    """Every weight of the model from the fixture (batch-norm step counters excepted), strictly."""
    own = model.double().state_dict()
    left = {k for k in own if k not in state and not k.endswith("num_batches_tracked")}
    assert not left and set(state) <= set(own), f"not in the fixture: {left}; not in the model: {set(state) - set(own)}"
    model.load_state_dict({**own, **state})
    return model


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()
