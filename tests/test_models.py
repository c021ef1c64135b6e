"""Models: registry, AsLeD-Net size and shapes, the identity row, and exact chunked matching."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from asled.errors import DataError
from asled.models import build_model, count_parameters, model_names
from asled.models.alm import global_topk_aggregate
from asled.models.asled_net import AsLeDNet, parameter_breakdown
from asled.models.blocks import flow_warp
from asled.models.spynet import SPyNet

PAPER_PARAMS = 8.8e6


@pytest.fixture(scope="module")
def asled_net():
    torch.manual_seed(0)
    return build_model("asled_net")


def naive_topk_aggregate(query, key, value, k):
    """All-pairs reference: the full similarity matrix at once, no chunking, no recomputation."""
    q = F.normalize(query.flatten(2), dim=1).transpose(1, 2)
    kn = F.normalize(key.flatten(2), dim=1).transpose(1, 2)
    v = value.flatten(2).transpose(1, 2)
    sim = q @ kn.transpose(1, 2)  # [N, Nq, Nk]
    top, idx = sim.topk(k, dim=2)
    weights = torch.softmax(top, dim=2)
    gathered = torch.stack([v[b][idx[b]] for b in range(v.shape[0])])  # [N, Nq, k, Cv]
    out = (weights.unsqueeze(-1) * gathered).sum(2)
    return out.transpose(1, 2).reshape(value.shape[0], value.shape[1], *query.shape[-2:])


def test_registry_lists_the_foundation_models():
    assert {"blur", "asled_net"} <= set(model_names())


def test_asled_net_matches_the_paper_size(asled_net):
    params = count_parameters(asled_net)
    assert abs(params - PAPER_PARAMS) / PAPER_PARAMS < 0.05, params
    breakdown = parameter_breakdown(asled_net)
    assert breakdown["total"] == params
    assert sum(v for name, v in breakdown.items() if name != "total") == params


def test_blur_frame_is_the_identity_without_parameters():
    model = build_model("blur")
    clip = torch.rand(1, 3, 3, 16, 16)
    assert count_parameters(model) == 0
    assert torch.equal(model(clip, torch.rand_like(clip)), clip)


def test_asled_net_forward_backward_on_cpu(asled_net):
    blur, ref = torch.rand(1, 7, 3, 64, 64), torch.rand(1, 7, 3, 64, 64)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # as training on CPU runs it: no op may refuse
    try:
        out = asled_net(blur, ref)
        assert out.shape == blur.shape
        out.square().mean().backward()
    finally:
        torch.use_deterministic_algorithms(previous)
    grads = [p.grad for p in asled_net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    asled_net.zero_grad(set_to_none=True)


@pytest.mark.parametrize("shape", [(1, 3, 3, 50, 70), (2, 2, 3, 33, 40)])
def test_asled_net_keeps_odd_and_small_sizes(asled_net, shape):
    with torch.no_grad():
        out = asled_net(torch.rand(shape), torch.rand(shape))
    assert out.shape == shape


def test_asled_net_is_deterministic_for_a_seed():
    clip = torch.rand(1, 2, 3, 32, 32)
    outputs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = build_model("asled_net")
        with torch.no_grad():
            outputs.append(model(clip, clip))
    assert torch.equal(outputs[0], outputs[1])


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 10_000])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_chunked_global_topk_equals_all_pairs(chunk_size, k):
    generator = torch.Generator().manual_seed(k * 100 + chunk_size)
    query = torch.randn(2, 8, 6, 9, generator=generator)
    key = torch.randn(2, 8, 5, 7, generator=generator)
    value = torch.randn(2, 4, 5, 7, generator=generator)
    chunked = global_topk_aggregate(query, key, value, k=k, chunk_size=chunk_size)
    torch.testing.assert_close(chunked, naive_topk_aggregate(query, key, value, k), rtol=1e-6, atol=1e-6)


def test_chunked_topk_gradients_equal_all_pairs():
    generator = torch.Generator().manual_seed(0)
    tensors = [torch.randn(1, 8, 5, 6, generator=generator, requires_grad=True) for _ in range(3)]
    chunked = global_topk_aggregate(*tensors, k=3, chunk_size=4)
    grads_chunked = torch.autograd.grad(chunked.square().sum(), tensors)
    naive = naive_topk_aggregate(*tensors, k=3)
    grads_naive = torch.autograd.grad(naive.square().sum(), tensors)
    for a, b in zip(grads_chunked, grads_naive):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "variant",
    [
        {"use_alm": False},
        {"use_dc": False},
        {"use_rmc": False},
        {"use_alm": False, "use_dc": False, "use_rmc": False},
        {"dc_use_ref": False},
        {"rmc_refine": False},
        {"rmc_warp": False},
    ],
)
def test_ablation_variants_build_and_run(asled_net, variant):
    model = AsLeDNet(**variant)
    clip = torch.rand(1, 2, 3, 24, 28)
    with torch.no_grad():
        assert model(clip, clip).shape == clip.shape
    if {"use_alm", "use_dc", "use_rmc"} & set(variant):  # removed modules become same-size stand-ins
        full = count_parameters(asled_net)
        assert abs(count_parameters(model) - full) / full < 0.01


def test_flow_warp_with_zero_flow_is_the_identity():
    x = torch.rand(2, 5, 9, 13)
    torch.testing.assert_close(flow_warp(x, torch.zeros(2, 2, 9, 13)), x)


def test_flow_warp_shifts_by_whole_pixels():
    x = torch.rand(1, 1, 6, 8)
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 1.0  # sample one pixel to the right
    torch.testing.assert_close(flow_warp(x, flow)[..., :-1], x[..., 1:])


def test_spynet_weights_missing_file_names_it(tmp_path):
    missing = tmp_path / "spynet_missing.pth"
    with pytest.raises(DataError, match="spynet_missing.pth"):
        SPyNet(weights=str(missing))


def test_spynet_weights_load_from_a_local_file(tmp_path):
    torch.manual_seed(5)
    source = SPyNet()
    for p in source.parameters():
        torch.nn.init.normal_(p, std=0.01)
    path = tmp_path / "spynet.pth"
    torch.save({"params": source.state_dict()}, path)  # BasicSR checkpoint layout
    loaded = SPyNet(weights=str(path))
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_pad_to_multiple_pads_bottom_right_and_crops_back():
    from asled.models.blocks import pad_to_multiple

    clip = torch.rand(1, 2, 3, 50, 70)
    padded, (h, w) = pad_to_multiple(clip, 32)
    assert padded.shape == (1, 2, 3, 64, 96)
    assert torch.equal(padded[..., :h, :w], clip)
