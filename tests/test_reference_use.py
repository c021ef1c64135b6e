"""AsLeD-Net's readings of ambiguous prose (ALM temperature, DC input, output init) and the
reference-use study (asled/studies/reference_use.py) end to end on tiny data."""

from __future__ import annotations

import math

import pytest
import torch

from asled.models import build_model, count_parameters
from asled.models.alm import ALM
from asled.models.asled_net import AsLeDNet
from asled.models.registry import catalog as load_catalog

SMALL = {"mid_channels": 8, "propagation_blocks": 1, "decoder_blocks": 1, "channels_last": False}


def clip(seed: int = 0, t: int = 2, h: int = 12, w: int = 14) -> torch.Tensor:
    return torch.rand(1, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


# -- ALM temperature -------------------------------------------------------------------------------


def test_fixed_temperature_has_no_parameter_and_sharpens_the_weights():
    # the reference holds every blurry vector once (spatially permuted): cosine 1 for the true match,
    # near 0 for the rest (64 random channels)
    g = torch.Generator().manual_seed(0)
    f_b = torch.randn(1, 64, 5, 6, generator=g)
    perm = torch.randperm(30, generator=g)
    f_ref = f_b.flatten(2)[:, :, perm].view(1, 64, 5, 6)
    alm1, alm_sharp = ALM(64, temperature=1.0), ALM(64, temperature=0.01)
    assert count_parameters(alm1) == count_parameters(alm_sharp) == count_parameters(ALM(64))
    soft, sharp = alm1.match(f_b, f_ref), alm_sharp.match(f_b, f_ref)
    # T -> 0: the true match itself; T = 1: an average of the top 3 that differs from it
    torch.testing.assert_close(sharp, f_b, rtol=1e-4, atol=1e-4)
    assert (soft - f_b).abs().max() > 0.1


def test_learnable_temperature_gets_a_gradient_and_starts_at_the_given_value():
    alm = ALM(8, temperature=0.5, learnable_temperature=True)
    assert count_parameters(alm) == count_parameters(ALM(8)) + 1
    assert math.isclose(float(alm.temperature.detach()), 0.5, rel_tol=1e-6)
    fixed = ALM(8, temperature=0.5)
    fixed.load_state_dict({k: v for k, v in alm.state_dict().items() if k != "log_temperature"})
    f_b, f_ref = torch.randn(1, 8, 5, 6), torch.randn(1, 8, 5, 6)
    torch.testing.assert_close(alm(f_b, f_ref), fixed(f_b, f_ref))  # same function at init
    alm(f_b, f_ref).square().sum().backward()
    assert alm.log_temperature.grad is not None and alm.log_temperature.grad.abs() > 0


def test_learnable_temperature_works_in_window_mode():
    alm = ALM(8, temperature=1.0, learnable_temperature=True, mode="window", window=3)
    alm(torch.randn(1, 8, 5, 6), torch.randn(1, 8, 5, 6)).sum().backward()
    assert alm.log_temperature.grad.abs() > 0


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        ALM(8, temperature=0.0)


def test_asled_net_passes_the_temperature_kwargs_to_alm():
    model = AsLeDNet(**SMALL, alm_temperature=0.2, alm_learnable_temperature=True)
    assert model.alm.learnable_temperature and math.isclose(float(model.alm.temperature.detach()), 0.2, rel_tol=1e-6)
    blur, ref = clip(0), clip(1)
    (model(blur, ref) - blur).square().mean().backward()
    assert model.alm.log_temperature.grad.abs() > 0


# -- DC input -------------------------------------------------------------------------------------


def _dc_inputs(model: AsLeDNet, blur: torch.Tensor, ref: torch.Tensor) -> list[torch.Tensor]:
    seen = []
    handle = model.dc.register_forward_pre_hook(lambda _m, args: seen.append(args[1].detach().clone()))
    with torch.no_grad():
        model(blur, ref)
    handle.remove()
    return seen


@pytest.mark.parametrize("dc_variant", ["dc", "concat_ca"])
def test_dc_input_ref_routes_the_reference_encoder_feature_into_dc(dc_variant):
    blur, ref = clip(0), clip(1)
    for dc_input in ("alm", "ref"):
        torch.manual_seed(0)
        model = AsLeDNet(**SMALL, dc_input=dc_input, dc_variant=dc_variant).eval()
        (seen,) = _dc_inputs(model, blur, ref)
        with torch.no_grad():
            f_b = model.encoder_blur(blur.flatten(0, 1))
            f_ref = model.encoder_ref(ref.flatten(0, 1))
            expected = f_ref if dc_input == "ref" else model.alm(f_b, f_ref)
        torch.testing.assert_close(seen, expected)


def test_dc_input_does_not_change_parameters_or_init():
    torch.manual_seed(0)
    a = AsLeDNet(**SMALL, dc_input="alm")
    torch.manual_seed(0)
    b = AsLeDNet(**SMALL, dc_input="ref")
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_dc_input_is_checked():
    with pytest.raises(ValueError, match="dc_input"):
        AsLeDNet(**SMALL, dc_input="both")


def test_identity_start_returns_the_blurry_input():
    model = build_model("asled_net", **SMALL, identity_start=True)
    blur = clip(0)
    with torch.no_grad():
        assert torch.equal(model(blur, clip(1)), blur)


# -- catalogue ------------------------------------------------------------------------------------


def test_every_asled_net_variant_inherits_the_new_kwargs():
    catalog = load_catalog()
    base = catalog["asled_net"]["kwargs"]
    keys = ("alm_temperature", "alm_learnable_temperature", "dc_input")
    assert all(k in base for k in keys)
    for name, entry in catalog.items():
        if name.startswith("asled_net"):
            assert all(entry["kwargs"][k] == base[k] for k in keys), name


def test_catalogue_kwargs_build():
    model = build_model("asled_net", mid_channels=8, propagation_blocks=1, decoder_blocks=1,
                        alm_learnable_temperature=True, dc_input="ref")
    assert model.dc_input == "ref" and model.alm.learnable_temperature


# -- the study, end to end on tiny data ------------------------------------------------------------


def test_reference_use_study_runs_end_to_end(tmp_path):
    import json

    from asled.studies import reference_use
    from test_dataset import make_split

    train = make_split(tmp_path / "train", {"0000": 4}, size=(32, 40))
    valid = make_split(tmp_path / "valid", {"0001": 3}, size=(32, 40))
    out = tmp_path / "study.json"
    argv = ["--train", str(train), "--valid", str(valid), "--arms", "floor,ref_Tlearn", "--steps", "3",
            "--eval-every", "2", "--crop", "24", "--frames", "2", "--width", "8", "--blocks", "1",
            "--probe-size", "16", "--out", str(out),
            "--define", 'tiny={"model": "asled_net", "kwargs": {"alm_temperature": 0.1}}']
    result = reference_use.main(argv)
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [a["arm"] for a in result["arms"]] == ["floor", "ref_Tlearn"]
    floor, asled = result["arms"]
    assert [r["step"] for r in floor["curve"]] == [0, 2, 3]
    # both arms start as the identity: the Blur frame's PSNR at step 0
    for arm in (floor, asled):
        assert arm["curve"][0]["valid_psnr"] == pytest.approx(result["blur_psnr"]["valid"], abs=1e-6)
    row = asled["curve"][-1]
    assert row["match"]["summary"]["entropy_norm"] <= 1.0 + 1e-6
    assert {s["dx"] for s in row["match"]["synthetic"]} >= {0, 3}
    assert set(row["grad"]["fusion_input"]) == {"alm", "dc", "rmc", "base"}
    assert row["grad"]["log_temperature_grad"] != 0.0 and "alm_temperature" in row
    assert floor["params"] < 20_000


def test_match_quality_finds_true_shifts_with_matching_features():
    """With encoders that pass pixels through (identity 1x1 'features' of a textured image), the top-1
    match lies at the true shifted position: the probe measures what it says."""
    from asled.studies import reference_use

    class PixelFeatures(torch.nn.Module):
        def forward(self, x):  # 3x3 neighbourhoods as 27-dim features: distinctive per position
            return torch.nn.functional.unfold(x, 3, padding=1).view(x.shape[0], 27, *x.shape[-2:])

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder_blur = self.encoder_ref = PixelFeatures()
            self.alm = ALM(27, top_k=3, temperature=0.01)

    g = torch.Generator().manual_seed(0)
    gt = torch.rand(3, 40, 40, generator=g)
    probe = {"blur": gt, "gt": gt, "ref": gt, "box": (8, 8, 24)}
    q = reference_use.match_quality(Probe(), probe, shifts=((0, 0), (3, 0), (0, -4)))
    for row in q["synthetic"]:  # only the crop's edge rows/columns (zero-padded features) can miss
        assert row["top1_err_px_median"] == 0.0 and row["within_1px"] > 0.85, row
    assert q["data_ref"]["top1_dist_px_median"] == 0.0
