"""FLOP counting on the meta device (asled/flops.py): every catalogue model counts, the paper's AsLeD-Net
figure, torchvision's deformable convolution, the measured peak and the MFU arithmetic."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.ops import deform_conv2d

from asled.flops import count_flops, measure_peak, model_flops, safe_model_flops, utilisation
from asled.models import build_model, model_names


@pytest.mark.parametrize("name", model_names())
def test_every_catalogue_model_counts_on_meta(name):
    """Full-size models at a tiny clip: no allocation, a count for each, and the uncounted ops named."""
    result = model_flops(lambda: build_model(name), (1, 2, 3, 32, 32))
    assert isinstance(result["flops"], int) and result["flops"] >= 0
    assert (result["flops"] == 0) == (name == "blur")  # the blurry input itself computes nothing
    assert all(isinstance(op, str) and op.count(".") == 1 for op in result["not_counted"])


def test_asled_net_forward_flops_scale():
    """Convolutions grow at most linearly with the pixel count (SPyNet pads small frames up to its
    pyramid), ALM's global matching matmuls quadratically: 64x64 vs 32x32 gives at most 4x and more
    than 4x. (At the paper's profile size, 7 frames of 256x256, the count is 1677.8 GFLOP per frame:
    `asled profile asled_net --dataset realmcvsr --flops-only`, docs/training.md "Speed and utilisation".)"""
    small = model_flops(lambda: build_model("asled_net"), (1, 2, 3, 32, 32))
    large = model_flops(lambda: build_model("asled_net"), (1, 2, 3, 64, 64))
    assert set(small["by_op"]) == {"aten.convolution", "aten.mm"}
    conv_small, conv_large = small["by_op"]["aten.convolution"], large["by_op"]["aten.convolution"]
    assert 2 * conv_small < conv_large <= 4 * conv_small
    assert large["by_op"]["aten.mm"] > 4 * small["by_op"]["aten.mm"]
    assert "aten.grid_sampler_2d" in small["not_counted"] and "aten.topk" in small["not_counted"]


def test_asled_net_paper_profile_flops(capsys):
    """Issue 16's acceptance figure: `asled profile asled_net --json` under the paper recipe counts about
    1.68 TFLOP per 256x256 frame of a 7-frame clip (FLOPs only: 2 s on one core)."""
    from asled import cli

    assert cli.main(["profile", "asled_net", "--dataset", "realmcvsr", "--flops-only", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 7 and result["size"] == 256 and result["params"] == 8_793_521
    assert result["gflops_per_frame"] == pytest.approx(1677.76, abs=0.01)
    assert "paper_scale" not in result  # the paper recipe's model has no overrides: it is the paper scale
    # the default dataset (the demo) profiles its reduced model, and reports the paper-scale count beside it
    assert cli.main(["profile", "asled_net", "--flops-only", "--json"]) == 0
    demo = json.loads(capsys.readouterr().out)
    assert demo["model_kwargs"] and demo["gflops_per_frame"] < 1000
    assert demo["paper_scale"]["gflops_per_frame"] == pytest.approx(1677.76, abs=0.01)
    assert demo["paper_scale"]["params"] == 8_793_521 and demo["paper_scale"]["frames"] == 7


def test_training_step_counts_backward():
    forward = model_flops(lambda: build_model("ifirnn"), (2, 3, 3, 32, 32))
    step = model_flops(lambda: build_model("ifirnn"), (2, 3, 3, 32, 32), backward=True)
    assert step["pass"] == "forward+backward" and "aten.convolution_backward" in step["by_op"]
    assert 2.5 * forward["flops"] < step["flops"] <= 3 * forward["flops"]  # the input's gradient is skipped


def test_deform_conv_counts_like_its_convolution():
    with torch.device("meta"):
        x, w = torch.empty(2, 8, 16, 16), torch.empty(12, 4, 3, 3)  # 2 weight groups
        offset, mask = torch.empty(2, 2 * 2 * 9, 16, 16), torch.empty(2, 2 * 9, 16, 16)
    deform = count_flops(lambda: deform_conv2d(x, offset, w, padding=1, mask=mask))
    conv = count_flops(lambda: torch.nn.functional.conv2d(x, w, padding=1, groups=2))
    assert deform["flops"] == conv["flops"] == 2 * 2 * 12 * 16 * 16 * 4 * 9


def test_unavailable_count_is_none_with_reason():
    def broken():
        raise RuntimeError("data-dependent branch")

    result = safe_model_flops(broken, (1, 1, 3, 8, 8))
    assert result["flops"] is None and "data-dependent branch" in result["flops_unavailable"]


def test_peak_and_utilisation():
    peak = measure_peak(torch.device("cpu"), size=64, repeats=2, trials=2, conv=(1, 8, 16))
    assert peak["dtype"] == "float32" and (peak["size"], peak["trials"]) == (64, 2)
    assert peak["tflops"] == max(peak["by_way"].values()) > 0 and set(peak["by_way"]) == {"torch.mm", "conv3x3"}
    assert utilisation(2e12, 2.0, {"tflops": 4.0}) == {"tflops_per_s": 1.0, "mfu": 0.25}
    assert utilisation(None, 1.0, peak) == utilisation(0, 1.0, peak) == {"tflops_per_s": None, "mfu": None}
    assert utilisation(1e12, 1.0, None)["mfu"] is None


def test_profile_cli_flops_only(capsys):
    """`asled profile --flops-only`: the count without a forward pass; `--dataset` picks another recipe."""
    from asled import cli

    assert cli.main(["profile", "ifirnn", "--flops-only", "--json"]) == 0
    demo = json.loads(capsys.readouterr().out)
    assert demo["ms_per_frame"] is None and demo["mfu"] is None and demo["timings_ms"] == []
    assert demo["model_kwargs"] and demo["size"] == 256  # the demo recipe's scale and profile size
    assert demo["gflops_per_frame"] == pytest.approx(demo["flops"]["flops"] / demo["frames"] / 1e9)
    assert "2 per multiply-accumulate" in demo["flops"]["convention"]
    assert cli.main(["profile", "ifirnn", "--flops-only", "--json", "--dataset", "realmcvsr"]) == 0
    paper = json.loads(capsys.readouterr().out)
    assert paper["model_kwargs"] == {} and paper["frames"] == 7 and paper["params"] > demo["params"]
    assert cli.main(["profile", "ifirnn", "--flops-only", "--dataset", "nope"]) == 2
    assert "'nope' is not a key of 'datasets'" in capsys.readouterr().err
