"""AsLeD-Net ablation variants: every row of Table 2 and Supplementary Table 1 is a catalogue entry of
the same class; Table 2 subsets keep the parameter count; every variant trains (forward + backward).

Kept fast: parameter counts are taken on the meta device (no weights are allocated or initialised),
and forward/backward runs use the variant's own slot modules with a block-free base branch and decoder
(the trunk is identical in every variant and covered at full size by tests/test_models.py).
"""

from __future__ import annotations

import pytest
import torch
from model_checks import backward_at_acceptance_shape

from asled.models import build_model, count_parameters, model_names
from asled.models.asled_net import AsLeDNet, ConcatResidualCompensation, StandIn
from asled.models.channel_attention import ConcatChannelAttention
from asled.models.dc import DifferenceCompensation
from asled.models.deformable_attention import (
    DeformableAttention,
    global_match_displacement,
)
from asled.models.masa_matching import MASAMatching, coarse_to_fine_indices
from asled.models.pcd_alignment import PCDMotionCompensation
from asled.models.registry import entry
from asled.models.rmc import ReferenceMotionCompensation

TABLE2 = ["none", "alm", "dc", "rmc", "dc_rmc", "alm_rmc", "alm_dc", "full"]
SUPP1 = list("abcdefghijklmno")
VARIANTS = [f"asled_net_t2_{s}" for s in TABLE2] + [f"asled_net_s1_{r}" for r in SUPP1]
SMALL_TRUNK = {"propagation_blocks": 0, "decoder_blocks": 0}


def meta_build(name: str, **overrides) -> AsLeDNet:
    with torch.device("meta"):
        return build_model(name, **overrides)


@pytest.fixture(scope="module")
def full_params() -> int:
    return count_parameters(meta_build("asled_net"))


def test_every_ablation_row_is_registered_with_table_fields():
    names = set(model_names())
    assert set(VARIANTS) <= names
    for name in VARIANTS:
        spec = entry(name)
        assert spec["table"] == ("table2" if "_t2_" in name else "supp1"), name
        assert spec["label"] and spec["paper_row"], name
    for r in SUPP1:
        spec = entry(f"asled_net_s1_{r}")
        assert spec["paper_row"] == f"({r})" and spec["label"].startswith(f"({r}) ")
    for s in TABLE2:
        modules = set(entry(f"asled_net_t2_{s}")["modules"])
        assert modules == set() if s == "none" else modules == set(s.replace("full", "alm_dc_rmc").split("_"))


def test_variants_share_one_class():
    targets = {entry(name)["target"] for name in model_names() if name.startswith("asled_net")}
    assert targets == {"asled.models.asled_net:AsLeDNet"}


@pytest.mark.parametrize("name", [f"asled_net_t2_{s}" for s in TABLE2])
def test_table2_subsets_keep_the_parameter_count(name, full_params):
    model = meta_build(name)
    assert abs(count_parameters(model) - full_params) / full_params < 0.01
    present = set(entry(name)["modules"])
    assert isinstance(model.alm, StandIn) == ("alm" not in present)
    assert isinstance(model.dc, StandIn) == ("dc" not in present)
    assert isinstance(model.rmc, StandIn) == ("rmc" not in present)


def test_stand_ins_match_their_module_to_within_one_narrow_channel():
    for target in (0, 8_256, 90_306, 147_648, 500_000):
        standin = meta_build_standin(target)
        assert abs(count_parameters(standin) - max(target, 8_256)) <= 600, target


def meta_build_standin(target: int) -> StandIn:
    with torch.device("meta"):
        return StandIn(64, target) if target >= 8_256 else StandIn(64, 8_256)


@pytest.mark.parametrize(("row", "k"), [("c", 1), ("d", 3), ("e", 5)])
def test_alm_k_rows(row, k):
    model = meta_build(f"asled_net_s1_{row}")
    assert model.alm_variant == "topk" and model.alm.top_k == k


SLOT_TYPES = {
    "a": ("alm", StandIn),
    "b": ("alm", ConcatChannelAttention),
    "f": ("alm", DeformableAttention),
    "g": ("alm", MASAMatching),
    "h": ("dc", StandIn),
    "i": ("dc", ConcatChannelAttention),
    "j": ("dc", DifferenceCompensation),
    "k": ("rmc", StandIn),
    "l": ("rmc", ReferenceMotionCompensation),
    "m": ("rmc", ReferenceMotionCompensation),
    "n": ("rmc", ConcatResidualCompensation),
    "o": ("rmc", PCDMotionCompensation),
}


@pytest.mark.parametrize("row", sorted(SLOT_TYPES))
def test_supp1_rows_change_one_slot(row):
    model = meta_build(f"asled_net_s1_{row}")
    slot, cls = SLOT_TYPES[row]
    assert isinstance(getattr(model, slot), cls)
    defaults = {"alm": "topk", "dc": "dc", "rmc": "rmc"}
    for other in set(defaults) - {slot}:
        assert getattr(model, f"{other}_variant") == defaults[other]
    if row == "j":
        assert model.dc.use_ref is False
    if row == "l":
        assert model.rmc.refiner is None and model.rmc.warp
    if row == "m":
        assert not model.rmc.warp
    if row == "o":
        assert model.rmc.levels == 3 and model.rmc.align.dcn[0].conv_offset.out_channels == 3 * 8 * 9


def test_aliases_and_conflicts():
    with torch.device("meta"):
        assert AsLeDNet(use_alm=False).alm_variant == "none"
        assert AsLeDNet(use_rmc=False, rmc_variant="none").rmc_variant == "none"
        with pytest.raises(ValueError, match="conflicts"):
            AsLeDNet(use_alm=False, alm_variant="dat")
        with pytest.raises(ValueError, match="alm_variant"):
            AsLeDNet(alm_variant="nonsense")


def distinct_configs() -> list[str]:
    """One catalogue name per distinct kwargs (e.g. (a) is Table 2 'DC + RMC', (d) is asled_net)."""
    seen, names = set(), []
    for name in VARIANTS:
        key = repr(sorted(entry(name).get("kwargs", {}).items()))
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names


@pytest.mark.slow
@pytest.mark.parametrize("name", distinct_configs())
def test_variant_forward_backward(name):
    """The full-size variant, at the acceptance shape [1, 7, 3, 64, 64], on CPU (about 10 s each)."""
    model = backward_at_acceptance_shape(name, loss=lambda out: out.square().mean())
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    slot_params = [p for slot in (model.alm, model.dc, model.rmc) for p in slot.parameters()]
    assert any(p.grad.abs().sum() > 0 for p in slot_params)


@pytest.mark.parametrize("name", ["asled_net_s1_f", "asled_net_s1_g", "asled_net_s1_o"])
def test_matching_and_alignment_variants_keep_odd_sizes(name):
    torch.manual_seed(0)
    model = build_model(name, **SMALL_TRUNK)
    clip = torch.rand(1, 2, 3, 13, 19)
    with torch.no_grad():
        assert model(clip, torch.rand_like(clip)).shape == clip.shape


def test_global_match_displacement_recovers_a_shift():
    query = torch.randn(2, 8, 7, 9)
    key = torch.roll(query, shifts=(1, 2), dims=(2, 3))
    disp = global_match_displacement(query, key, chunk_size=5)
    assert (disp[:, 0, :, :7] == 2).all() and (disp[:, 1, :6] == 1).all()


def test_masa_coarse_to_fine_matching_finds_a_block_shift():
    query = torch.randn(1, 8, 16, 20)
    key = torch.roll(query, shifts=(4, 8), dims=(2, 3))
    idx = coarse_to_fine_indices(query, key, scale=4, radius=2)
    matched = key.flatten(2)[0][:, idx[0]].view_as(query[0])
    torch.testing.assert_close(matched[:, 4:-4, 4:-4], query[0, :, 4:-4, 4:-4])


@pytest.mark.parametrize("shape", [(1, 16, 11, 13), (2, 16, 5, 7)])
def test_slot_modules_keep_any_size(shape):
    a, b = torch.randn(shape), torch.randn(shape)
    for module in (ConcatChannelAttention(16), DeformableAttention(16, groups=8), MASAMatching(16)):
        assert module(a, b).shape == shape
    pcd = PCDMotionCompensation(16, groups=8, levels=3)
    fb, fr = torch.randn(1, 2, *shape[1:]), torch.randn(1, 2, *shape[1:])
    assert pcd(None, None, fb, fr).shape == fb.shape
