"""Metric conventions (`metrics.ssim`, `metrics.y_channel`, `metrics.border`), each against a computation
written here independently of `asled.metrics`: scikit-image with the peer's settings, or a NumPy
transcription of the formula (explicit padding and windows, no scipy filters)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from skimage import data
from skimage.color import rgb2ycbcr
from skimage.metrics import structural_similarity

from asled.cli import main as asled_main
from asled.errors import ConfigError
from asled.evaluate import evaluate
from asled.io import write_png
from asled.metrics.conventions import SSIM_CONVENTIONS
from asled.metrics.fr import rgb_to_y, ssim

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
NAFNET_FIXTURE = Path(__file__).parent / "fixtures" / "official" / "nafnet_ssim.npz"


@pytest.fixture(scope="module")
def pair():
    ref = data.astronaut()[100:140, 150:198]  # 48x40: small, so the explicit 3-D windows stay cheap
    dist = cv2.GaussianBlur(ref, (5, 5), 1.2)
    dist[::7, ::5] = 255 - dist[::7, ::5]  # some structure change too, not only blur
    return ref, dist


def gaussian(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - size // 2
    g = np.exp(-x * x / (2.0 * sigma * sigma))
    return g / g.sum()


def ssim_map(mu1, mu2, s11, s22, s12):
    return ((2 * mu1 * mu2 + C1) * (2 * s12 + C2)) / ((mu1**2 + mu2**2 + C1) * (s11 + s22 + C2))


def window_stats(x, y, weights, pad_mode):
    """Weighted local means/variances/covariance of x and y over every full window of `weights`' shape,
    after padding by the window radius with `pad_mode` (None: no padding, only the valid region)."""
    radius = [k // 2 for k in weights.shape]
    if pad_mode is not None:
        x = np.pad(x, [(r, r) for r in radius], mode=pad_mode)
        y = np.pad(y, [(r, r) for r in radius], mode=pad_mode)
    axes = tuple(range(-weights.ndim, 0))

    def mean(v):
        return (sliding_window_view(v, weights.shape) * weights).sum(axis=axes)

    mu1, mu2 = mean(x), mean(y)
    return mu1, mu2, mean(x * x) - mu1**2, mean(y * y) - mu2**2, mean(x * y) - mu1 * mu2


def numpy_gaussian2d(ref, dist) -> float:
    """BasicSR's `_ssim` per channel: 11x11 Gaussian, valid region only, then the channel mean."""
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    if ref.ndim == 2:
        ref, dist = ref[..., None], dist[..., None]
    w = np.outer(gaussian(), gaussian())
    return float(np.mean([ssim_map(*window_stats(ref[..., c], dist[..., c], w, None)).mean()
                          for c in range(ref.shape[2])]))


def numpy_matlab3d(ref, dist) -> float:
    """NAFNet/DSTNet `_ssim_3d`: one 11x11x11 Gaussian over (H, W, C), edge-replicated, map mean."""
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    g = gaussian()
    w = g[:, None, None] * g[None, :, None] * g[None, None, :] if ref.ndim == 3 else np.outer(g, g)
    return float(ssim_map(*window_stats(ref, dist, w, "edge")).mean())


def numpy_skimage_default(ref, dist) -> float:
    """scikit-image's defaults: 7x7 uniform window, sample covariance (49/48), 3 pixels trimmed, channel mean."""
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    if ref.ndim == 2:
        ref, dist = ref[..., None], dist[..., None]
    w = np.full((7, 7), 1 / 49)
    values = []
    for c in range(ref.shape[2]):
        mu1, mu2, s11, s22, s12 = window_stats(ref[..., c], dist[..., c], w, None)
        n = 49 / 48
        values.append(ssim_map(mu1, mu2, s11 * n, s22 * n, s12 * n).mean())
    return float(np.mean(values))


TRANSCRIPTIONS = {"gaussian2d": numpy_gaussian2d, "matlab3d": numpy_matlab3d, "skimage_default": numpy_skimage_default}


@pytest.mark.parametrize("convention", list(SSIM_CONVENTIONS))
def test_ssim_convention_equals_numpy_transcription(pair, convention):
    ref, dist = pair
    expected = TRANSCRIPTIONS[convention](ref, dist)
    assert ssim(ref, dist, convention=convention) == pytest.approx(expected, abs=1e-10)
    assert ssim(ref, ref, convention=convention) == pytest.approx(1.0, abs=1e-12)
    # on the luma (metrics.y_channel) the same formula runs on the one channel
    y_expected = TRANSCRIPTIONS[convention](rgb_to_y(ref), rgb_to_y(dist))
    assert ssim(ref, dist, y_channel=True, convention=convention) == pytest.approx(y_expected, abs=1e-10)


def test_ssim_conventions_match_the_peers_scikit_image_calls(pair):
    ref, dist = pair
    # BasicSR/mmagic: Gaussian sigma 1.5 (11x11 support), population covariance, per channel
    basicsr = structural_similarity(ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=255, channel_axis=2)
    assert ssim(ref, dist, convention="gaussian2d") == pytest.approx(basicsr, abs=1e-12)
    # RefVSR / HCDeblur: structural_similarity(img1, img2, multichannel=True, data_range=1.0) on [0, 1] floats
    refvsr = structural_similarity(ref / 255.0, dist / 255.0, data_range=1.0, channel_axis=2)
    assert ssim(ref, dist, convention="skimage_default") == pytest.approx(refvsr, abs=1e-12)


def test_matlab3d_and_gaussian2d_match_nafnet_official_code():
    """Values from NAFNet's `basicsr/metrics/psnr_ssim.py` `calculate_ssim` (megvii-research/NAFNet commit
    2b4af71e; DSTNet ships the same function), run on CPU in float64 (the only edits: `.cuda()` dropped,
    its float32 casts and Conv3d made float64) on the seeded pair stored in the fixture; the float32
    values are from the unedited precision, as they run it."""
    f = np.load(NAFNET_FIXTURE)
    ref, dist = f["ref"], f["dist"]
    assert ssim(ref, dist, convention="matlab3d") == pytest.approx(float(f["ssim3d_rgb_f64"]), abs=1e-9)
    assert ssim(ref, dist, border=3, convention="matlab3d") == pytest.approx(float(f["ssim3d_rgb_border3_f64"]),
                                                                             abs=1e-9)
    assert ssim(ref, dist, convention="matlab3d") == pytest.approx(float(f["ssim3d_rgb_f32"]), abs=2e-6)
    # ssim3d=False is BasicSR's 2-D Gaussian per channel, valid region
    assert ssim(ref, dist, convention="gaussian2d") == pytest.approx(float(f["ssim2d_valid"]), abs=1e-9)
    # their Y path (`to_y_channel` of BGR input, computed in float32, then the 2-D replicate-padded map)
    assert ssim(ref, dist, y_channel=True, convention="matlab3d") == pytest.approx(float(f["ssim_y"]), abs=1e-7)


def test_ssim_conventions_give_different_numbers(pair):
    ref, dist = pair
    values = {c: ssim(ref, dist, convention=c) for c in SSIM_CONVENTIONS}
    assert len({round(v, 6) for v in values.values()}) == 3, values


@pytest.mark.parametrize("convention", list(SSIM_CONVENTIONS))
def test_border_crops_every_side_before_scoring(pair, convention):
    ref, dist = pair
    b = 4
    expected = TRANSCRIPTIONS[convention](ref[b:-b, b:-b], dist[b:-b, b:-b])
    assert ssim(ref, dist, border=b, convention=convention) == pytest.approx(expected, abs=1e-10)


def test_y_channel_is_matlab_rgb2ycbcr_studio_range(pair):
    ref, _ = pair
    # scikit-image's rgb2ycbcr is ITU-R BT.601 with Y in [16, 235], MATLAB's rgb2ycbcr before rounding
    assert np.abs(rgb_to_y(ref) - rgb2ycbcr(ref)[..., 0]).max() < 1e-9
    corners = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 0, 255]]], np.uint8)
    assert rgb_to_y(corners)[0] == pytest.approx([16.0, 235.0, 16 + 65.481, 16 + 24.966], abs=1e-9)


def test_unknown_convention_names_the_key_and_the_choices(pair, tmp_path):
    ref, dist = pair
    with pytest.raises(ConfigError, match="metrics.ssim must be one of gaussian2d, matlab3d, skimage_default"):
        ssim(ref, dist, convention="matlab")
    with pytest.raises(ConfigError, match="metrics.ssim must be one of gaussian2d, matlab3d, skimage_default"):
        evaluate("blur", tmp_path, tmp_path, tmp_path / "m.csv", ssim="matlab")


def test_metrics_fr_cli_takes_the_convention(tmp_path, monkeypatch, pair, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    ref, dist = pair
    write_png(tmp_path / "ref.png", ref)
    write_png(tmp_path / "dist.png", dist)
    args = ["metrics", "fr", str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--no-lpips", "--json"]
    assert asled_main([*args, "--ssim", "matlab3d", "--border", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ssim_convention"] == "matlab3d" and out["border"] == 2
    assert out["ssim"] == pytest.approx(numpy_matlab3d(ref[2:-2, 2:-2], dist[2:-2, 2:-2]), abs=1e-10)
    with pytest.raises(SystemExit):  # argparse lists the choices
        asled_main([*args, "--ssim", "matlab"])
    assert "gaussian2d" in capsys.readouterr().err
