"""Full-reference metrics and the evaluation step."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity
from test_dataset import make_split

from asled.cli import main as asled_main
from asled.errors import AsledError, ConfigError, DataError
from asled.evaluate import evaluate
from asled.io import read_png, write_png
from asled.metrics.fr import ALEXNET_FILE, LPIPSMetric, psnr, rgb_to_y, ssim
from asled.metrics.temporal import clip_warping_errors


@pytest.fixture(scope="module")
def pair():
    ref = data.astronaut()[100:196, 150:278]
    dist = cv2.GaussianBlur(ref, (5, 5), 1.2)
    return ref, dist


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """An empty project: the CLI's weights (its working directory's data/weights/torch), and the library's
    (TORCH_HOME), both point at the same empty folder."""
    home = tmp_path / "data" / "weights" / "torch"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def test_psnr_matches_numpy(pair):
    ref, dist = pair
    mse = ((ref.astype(np.float64) - dist.astype(np.float64)) ** 2).sum() / ref.size
    assert psnr(ref, dist) == pytest.approx(10 * np.log10(255**2 / mse), abs=1e-10)
    assert psnr(ref, ref) == math.inf
    inner = ((ref[4:-4, 4:-4].astype(np.float64) - dist[4:-4, 4:-4]) ** 2).mean()
    assert psnr(ref, dist, border=4) == pytest.approx(10 * np.log10(255**2 / inner), abs=1e-10)
    y_r = 16 + (65.481 * ref[..., 0] + 128.553 * ref[..., 1] + 24.966 * ref[..., 2]) / 255
    y_d = 16 + (65.481 * dist[..., 0] + 128.553 * dist[..., 1] + 24.966 * dist[..., 2]) / 255
    assert psnr(ref, dist, y_channel=True) == pytest.approx(10 * np.log10(255**2 / np.mean((y_r - y_d) ** 2)))
    assert rgb_to_y(np.array([[[255, 255, 255]]], np.uint8))[0, 0] == pytest.approx(235.0, abs=1e-3)


def test_ssim_identity_and_skimage(pair):
    ref, dist = pair
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-12)
    expected = structural_similarity(ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=2)
    assert ssim(ref, dist) == pytest.approx(expected, abs=1e-12)
    per_channel = np.mean([structural_similarity(ref[..., c].astype(float), dist[..., c].astype(float),
                                                 gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                                 data_range=255) for c in range(3)])
    assert ssim(ref, dist) == pytest.approx(per_channel, abs=1e-12)
    assert 0.5 < ssim(ref, dist) < 1.0
    with pytest.raises(ValueError):
        ssim(ref, dist[:-1])


def test_lpips_unavailable_without_weights(no_weights):
    ok, reason = LPIPSMetric.available()
    assert not ok
    assert ALEXNET_FILE in reason and "data/weights/torch/hub/checkpoints" in reason and "never downloaded" in reason
    with pytest.raises(AsledError, match="never downloaded"):
        LPIPSMetric()
    assert not any(no_weights.rglob("*.pth"))  # nothing was downloaded


def test_lpips_loads_local_trunk_weights(no_weights, pair):
    # A stand-in AlexNet file (random weights): checks the offline loading path, not LPIPS values.
    from torchvision.models import alexnet

    torch.manual_seed(0)
    path = no_weights / "hub" / "checkpoints" / ALEXNET_FILE
    path.parent.mkdir(parents=True)
    state = alexnet(weights=None).state_dict()
    torch.save(state, path)
    assert LPIPSMetric.available() == (True, "")
    with pytest.raises(AsledError, match="SHA-256 .* does not match"):
        LPIPSMetric()
    metric = LPIPSMetric(check_hash=False)
    trunk = metric.model.net.state_dict()
    assert torch.equal(trunk["slice2.3.weight"], state["features.3.weight"])
    assert torch.equal(trunk["slice5.10.bias"], state["features.10.bias"])
    ref, dist = pair
    assert metric(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert metric(ref, dist) > 0


def test_evaluate_blur_frames(tmp_path, no_weights):
    split = make_split(tmp_path / "split", {"0000": 4, "0001": 3})
    out_csv = tmp_path / "metrics" / "blur.csv"
    summary = evaluate("blur", split / "blur", split, out_csv)

    with open(out_csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7 and list(rows[0]) == ["method", "clip", "frame", "psnr", "ssim", "lpips", "warp_error"]
    assert all(r["lpips"] == "" and r["method"] == "blur" for r in rows)
    # the warping error belongs to (frame, next frame): empty on each clip's last frame only
    assert [r["warp_error"] == "" for r in rows] == [False, False, False, True, False, False, True]
    assert [(r["clip"], r["frame"]) for r in rows][:2] == [("0000", "0000"), ("0000", "0001")]

    values = []
    for clip, n in (("0000", 4), ("0001", 3)):
        for k in range(n):
            gt = read_png(split / "gt" / clip / f"{k:04d}.png").astype(np.float64)
            bl = read_png(split / "blur" / clip / f"{k:04d}.png").astype(np.float64)
            values.append(10 * np.log10(255**2 / np.mean((gt - bl) ** 2)))
    assert summary["psnr"] == pytest.approx(np.mean(values), abs=1e-9)
    assert summary["clips"]["0001"]["psnr"] == pytest.approx(np.mean(values[4:]), abs=1e-9)
    assert summary["frames"] == 7 and 0 < summary["ssim"] < 1
    assert summary["lpips"] is None and ALEXNET_FILE in summary["lpips_unavailable"]
    for clip, n in (("0000", 4), ("0001", 3)):
        gt = [read_png(split / "gt" / clip / f"{k:04d}.png") for k in range(n)]
        blur = [read_png(split / "blur" / clip / f"{k:04d}.png") for k in range(n)]
        assert summary["clips"][clip]["warp_error"] == pytest.approx(np.mean(clip_warping_errors(blur, gt)))
        assert summary["clips"][clip]["warp_error_gt"] == pytest.approx(np.mean(clip_warping_errors(gt, gt)))
        assert summary["clips"][clip]["warp_pairs"] == n - 1
    assert summary["warp_pairs"] == 5 and summary["temporal_flow"] == "gt"
    assert summary["warp_error"] == pytest.approx(np.mean([float(r["warp_error"]) for r in rows if r["warp_error"]]))
    saved = json.loads(out_csv.with_suffix(".json").read_text())
    assert saved["psnr"] == pytest.approx(summary["psnr"]) and saved["lpips"] is None

    disabled = evaluate("blur", split / "blur", split, tmp_path / "off.csv", lpips=False, temporal=False)
    assert disabled["lpips"] is None and "disabled" in disabled["lpips_unavailable"]
    assert disabled["warp_error"] is None and "metrics.temporal" in disabled["temporal_unavailable"]
    own_flow = evaluate("blur", split / "blur", split, tmp_path / "own.csv", lpips=False, temporal_flow="restored")
    assert own_flow["warp_error"] != summary["warp_error"] and own_flow["warp_error_gt"] == summary["warp_error_gt"]
    with pytest.raises(ConfigError, match="temporal_flow"):
        evaluate("blur", split / "blur", split, tmp_path / "bad.csv", temporal_flow="blur")


def test_evaluate_missing_or_wrong_size_frame(tmp_path, no_weights):
    split = make_split(tmp_path / "split", {"0000": 3})
    restored = tmp_path / "restored"
    for k in range(3):
        write_png(restored / "0000" / f"{k:04d}.png", read_png(split / "blur" / "0000" / f"{k:04d}.png"))
    (restored / "0000" / "0002.png").unlink()
    with pytest.raises(DataError, match=r"restored/0000/0002\.png.*missing"):
        evaluate("x", restored, split, tmp_path / "x.csv", lpips=False)
    write_png(restored / "0000" / "0002.png", np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(DataError, match=r"restored/0000/0002\.png.*10x10"):
        evaluate("x", restored, split, tmp_path / "x.csv", lpips=False)
    assert not (tmp_path / "x.csv").exists()


def metrics_fr_cli(capsys, *args: str) -> tuple[int, dict | str]:
    code = asled_main(["metrics", "fr", *args])
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if code == 0 and "--json" in args else captured.out + captured.err)


def test_metrics_fr_cli_matches_numpy_and_skimage(tmp_path, no_weights, pair, capsys):
    ref, dist = pair
    write_png(tmp_path / "ref.png", ref)
    write_png(tmp_path / "dist.png", dist)
    code, out = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--json")
    assert code == 0
    # independent computations: NumPy's MSE over all three channels, skimage's SSIM with the paper's window
    mse = np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2)
    assert abs(out["psnr"] - 10 * np.log10(255.0**2 / mse)) < 1e-6
    expected = structural_similarity(ref, dist, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
    assert abs(out["ssim"] - expected) < 1e-6
    assert out["lpips"] is None and ALEXNET_FILE in out["lpips_unavailable"]
    assert (out["border"], out["y_channel"]) == (0, False)

    code, out = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "ref.png"), "--json", "--no-lpips")
    assert code == 0 and out["psnr"] == "inf" and out["ssim"] == pytest.approx(1.0)
    assert "disabled" in out["lpips_unavailable"]
    code, out = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--border", "4",
                               "--y-channel", "--json")
    assert out["psnr"] == pytest.approx(psnr(ref, dist, border=4, y_channel=True), abs=1e-12)
    code, text = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "dist.png"))
    assert code == 0 and "PSNR" in text and "LPIPS unavailable" in text


def test_metrics_fr_cli_bad_input_is_a_clear_error(tmp_path, no_weights, pair, capsys):
    ref, _ = pair
    write_png(tmp_path / "ref.png", ref)
    write_png(tmp_path / "small.png", ref[:-2])
    code, err = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "small.png"), "--json")
    assert code == 2 and "small.png" in err and "same size" in err
    code, err = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "nope.png"))
    assert code == 2 and "nope.png: frame is missing" in err


def test_metrics_fr_cli_with_staged_weights(tmp_path, no_weights, pair, capsys):
    # Random AlexNet weights staged where torchvision keeps them: the CLI finds and loads the file, and
    # refuses it for scoring because it is not the published file (its SHA-256 prefix differs).
    from torchvision.models import alexnet

    torch.manual_seed(0)
    path = no_weights / "hub" / "checkpoints" / ALEXNET_FILE
    path.parent.mkdir(parents=True)
    torch.save(alexnet(weights=None).state_dict(), path)
    ref, dist = pair
    write_png(tmp_path / "ref.png", ref)
    write_png(tmp_path / "dist.png", dist)
    code, out = metrics_fr_cli(capsys, str(tmp_path / "ref.png"), str(tmp_path / "dist.png"), "--json")
    assert code == 0 and out["lpips"] is None and "does not match" in out["lpips_unavailable"]
