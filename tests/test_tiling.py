"""Tiled inference: exact when the tile covers the frame, seamless for local models, weights that
sum to one, odd frame sizes, and the wiring through infer / params.yaml."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from asled import config
from asled.infer import run_clip
from asled.tiling import axis_weights, check_tiling, tile_starts, tiled_forward


class LocalNet(nn.Module):
    """`layers` 3x3 convs on every frame: receptive radius `layers` pixels, zero padding at the frame."""

    def __init__(self, layers: int = 3):
        super().__init__()
        torch.manual_seed(0)
        mods = []
        for i in range(layers):
            mods += [nn.Conv2d(6 if i == 0 else 8, 3 if i == layers - 1 else 8, 3, padding=1)]
            if i < layers - 1:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods).double()
        self.calls = 0

    def forward(self, blur, ref):
        self.calls += 1
        b, t = blur.shape[:2]
        x = torch.cat([blur, ref], dim=2).flatten(0, 1)
        return self.net(x).unflatten(0, (b, t))


class GlobalNet(nn.Module):
    """Output depends on the whole frame (adds the frame mean): tiling changes it unless untiled."""

    def forward(self, blur, ref):
        return blur * 0.5 + ref.mean(dim=(-2, -1), keepdim=True)


def clip(h, w, t=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, t, 3, h, w, generator=g, dtype=dtype), torch.rand(1, t, 3, h, w, generator=g, dtype=dtype)


@pytest.mark.parametrize("tile", [None, 40, 41, 1000])
def test_tile_covering_the_frame_is_bitwise_untiled_in_one_call(tile):
    blur, ref = clip(40, 33, dtype=torch.float32)
    model = GlobalNet()
    assert torch.equal(tiled_forward(model, blur, ref, tile, 32), model(blur, ref))
    local = LocalNet()
    out = tiled_forward(local, blur.double(), ref.double(), tile, 8)
    assert local.calls == 1
    assert torch.equal(out, local(blur.double(), ref.double()))


@pytest.mark.parametrize("size", [(64, 64), (75, 101), (37, 53), (33, 200)])
@pytest.mark.parametrize("tile,overlap", [(32, 12), (27, 12), (40, 16)])
def test_local_model_tiled_equals_untiled(size, tile, overlap):
    """Receptive radius 3 <= overlap // 4: the cut edges' pixels carry zero weight."""
    model = LocalNet(layers=3)
    blur, ref = clip(*size)
    with torch.no_grad():
        tiled = tiled_forward(model, blur, ref, tile, overlap)
        whole = model(blur, ref)
    assert model.calls > 2
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max().item() <= 1e-6


def test_tiling_a_global_model_differs_but_stays_finite():
    """AsLeD-Net-like global context: tiles see only themselves (documented approximation)."""
    blur, ref = clip(50, 70)
    tiled = tiled_forward(GlobalNet(), blur, ref, 32, 8)
    assert torch.isfinite(tiled).all()
    assert not torch.allclose(tiled, GlobalNet()(blur, ref))


@pytest.mark.parametrize("tile", [8, 16, 33, 64, 100])
def test_axis_weights_sum_to_one_and_spare_cut_edges(tile):
    for overlap in range(0, tile // 2):
        if tile < 2 * overlap + 2:
            continue
        for length in range(1, 260, 7):
            weights = axis_weights(length, tile, overlap)
            total = torch.zeros(length, dtype=torch.float64)
            margin = overlap // 4
            for i, (start, w) in enumerate(weights):
                assert len(w) == min(tile, length) and start + len(w) <= length
                assert (w >= 0).all() and (w <= 1).all()
                if margin and i > 0:
                    assert not w[:margin].any()
                if margin and i < len(weights) - 1:
                    assert not w[-margin:].any()
                total[start : start + len(w)] += w
            torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64), rtol=0, atol=1e-12)


def test_tile_starts_overlap_by_at_least_overlap():
    for length in range(40, 500, 13):
        starts = tile_starts(length, 32, 8)
        assert starts[0] == 0 and starts[-1] == length - 32
        assert all(0 < b - a <= 32 - 8 for a, b in zip(starts, starts[1:]))


def test_blended_2d_weights_sum_to_one():
    h, w = 45, 77
    ones = torch.ones(1, 2, 3, h, w, dtype=torch.float64)
    # a model that returns ones: the blend is then the sum of the 2-D weights at every pixel
    out = tiled_forward(lambda b, r: torch.ones_like(b), ones, ones, 20, 8)
    torch.testing.assert_close(out, ones, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [(31, 47), (17, 100), (100, 17), (1, 50)])
def test_odd_sizes_and_one_tiled_axis(size):
    blur, ref = clip(*size)
    model = LocalNet(layers=2)
    with torch.no_grad():
        out = tiled_forward(model, blur, ref, 24, 8)
        whole = model(blur, ref)
    assert out.shape == blur.shape
    assert (out - whole).abs().max().item() <= 1e-6


def test_bad_tiling_is_refused():
    blur, ref = clip(64, 64)
    for tile, overlap in [(16, 8), (0, 0), (32, -1)]:
        with pytest.raises(ValueError):
            tiled_forward(LocalNet(), blur, ref, tile, overlap)
    check_tiling(None, 32)


def test_run_clip_tiles_frames_for_the_identity():
    from asled.models import build_model

    blur = torch.rand(5, 3, 40, 60)
    out = run_clip(build_model("blur").eval(), blur, torch.rand_like(blur), 2, torch.device("cpu"), tile=24, tile_overlap=8)
    torch.testing.assert_close(out, blur, rtol=0, atol=1e-6)


def test_params_carry_tile_settings():
    params = config.load_params("params.yaml")
    for name, recipe in params["recipes"].items():
        assert "tile" in recipe["test"] and "tile_overlap" in recipe["test"], name
        check_tiling(recipe["test"]["tile"], recipe["test"]["tile_overlap"])
    assert params["recipes"]["paper"]["test"]["tile"] == 256
    # the demo's test frames fit one tile (Table 1 is the untiled result); only larger real captures are cut
    demo = params["datasets"]["demo"]
    assert params["recipes"]["demo"]["test"]["tile"] >= max(demo["width"], demo["height"])
