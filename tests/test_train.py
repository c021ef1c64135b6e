"""Loss, training, inference and profiling on a tiny prepared split with a tiny model."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from test_dataset import make_split
from torch import nn

from asled.errors import ConfigError
from asled.infer import infer
from asled.io import read_png
from asled.losses import charbonnier
from asled.models import registry
from asled.profiling import profile_model
from asled.train import train

SETTINGS = {"iterations": 3, "batch_size": 2, "crop": 16, "frames": 3, "lr": 1e-3, "eta_min": 1e-5,
            "charbonnier_eps": 1e-3, "val_every": 2, "num_workers": 0}


class TinyNet(nn.Module):
    """Per-frame conv on [blur, ref] added to the blurry frame."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(6, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, blur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = blur.shape
        x = torch.cat([blur, ref], 2).reshape(b * t, 2 * c, h, w)
        return blur + self.body(x).reshape(b, t, c, h, w)


class ZeroNet(nn.Module):
    """No parameters: returns the blurry clip."""

    def forward(self, blur: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return blur


@pytest.fixture
def models(monkeypatch):
    cat = registry.catalog()
    monkeypatch.setitem(cat, "tiny_test", {"target": f"{__name__}:TinyNet", "kwargs": {"channels": 4}})
    monkeypatch.setitem(cat, "zero_test", {"target": f"{__name__}:ZeroNet"})


@pytest.fixture
def splits(tmp_path):
    return {
        "train": make_split(tmp_path / "train", {"0000": 6, "0001": 5}),
        "valid": make_split(tmp_path / "valid", {"0002": 5}),
        "test": make_split(tmp_path / "test", {"0003": 5, "0004": 4}),
    }


def numpy_psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_charbonnier_hand_value():
    pred = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    target = torch.tensor([[0.0, -1.0], [1.0, 0.5]])
    eps = 1e-3
    expected = (eps + math.sqrt(16 + eps**2) + eps + math.sqrt(0.25 + eps**2)) / 4
    assert charbonnier(pred, target, eps=eps).item() == pytest.approx(expected, rel=1e-6)
    assert charbonnier(target, target, eps=0.1).item() == pytest.approx(0.1, rel=1e-6)


def test_train_tiny_model(models, splits, tmp_path):
    ckpt_path, log = tmp_path / "ckpt" / "tiny.pt", tmp_path / "logs" / "tiny.csv"
    summary = train("tiny_test", splits["train"], splits["valid"], ckpt_path, SETTINGS, seed=0, log_csv=log,
                    device="cpu", model_kwargs={"channels": 4})
    assert summary["trained"] and summary["iterations"] == 3
    assert math.isfinite(summary["final_loss"]) and math.isfinite(summary["best_val_psnr"])
    assert not torch.are_deterministic_algorithms_enabled()  # global setting restored

    ckpt = torch.load(ckpt_path, weights_only=True)
    for key in ("method", "model_kwargs", "state_dict", "best_state_dict", "best_val_psnr", "iteration", "seed",
                "settings"):
        assert key in ckpt
    assert ckpt["method"] == "tiny_test" and ckpt["iteration"] == 3 and ckpt["seed"] == 0
    assert ckpt["model_kwargs"] == {"channels": 4}
    model = TinyNet(**ckpt["model_kwargs"])
    model.load_state_dict(ckpt["best_state_dict"])
    model.load_state_dict(ckpt["state_dict"])

    with open(log) as f:
        rows = list(csv.DictReader(f))
    # iteration 0: the untrained model is validated before the first step (no loss yet)
    assert [r["iteration"] for r in rows] == ["0", "1", "2", "3"]
    assert rows[0]["loss"] == "" and rows[0]["val_psnr"]
    validated = [float(r["val_psnr"]) for r in rows if r["val_psnr"]]
    steps = rows[1:]
    assert all(math.isfinite(float(r["loss"])) for r in steps)
    assert steps[0]["val_psnr"] == "" and steps[1]["val_psnr"] and steps[2]["val_psnr"]
    lrs = [float(r["lr"]) for r in steps]
    assert lrs[0] == pytest.approx(1e-3) and lrs[0] > lrs[1] > lrs[2] > 1e-5  # cosine annealing
    assert ckpt["best_val_psnr"] == pytest.approx(max(validated))
    assert not list(ckpt_path.parent.glob(".*tmp")) and not list(log.parent.glob(".*tmp"))

    # CPU runs are bit-reproducible
    again = tmp_path / "again.pt"
    train("tiny_test", splits["train"], splits["valid"], again, SETTINGS, seed=0, device="cpu",
          model_kwargs={"channels": 4})
    other = torch.load(again, weights_only=True)
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(v, other["state_dict"][k])


def test_train_zero_parameter_model_writes_validation_only(models, splits, tmp_path):
    ckpt_path, log = tmp_path / "zero.pt", tmp_path / "zero.csv"
    summary = train("zero_test", splits["train"], splits["valid"], ckpt_path, SETTINGS, log_csv=log, device="cpu")
    assert not summary["trained"] and summary["iterations"] == 0 and "note" in summary
    ckpt = torch.load(ckpt_path, weights_only=True)
    assert ckpt["iteration"] == 0 and "note" in ckpt and ckpt["state_dict"] == {}

    valid = splits["valid"]
    expected = np.mean([numpy_psnr(read_png(valid / "gt" / "0002" / f"{k:04d}.png"),
                                   read_png(valid / "blur" / "0002" / f"{k:04d}.png")) for k in range(5)])
    assert ckpt["best_val_psnr"] == pytest.approx(expected, abs=1e-9)
    with open(log) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["iteration"] == "0" and rows[0]["loss"] == ""
    assert float(rows[0]["val_psnr"]) == pytest.approx(expected, abs=1e-6)


def test_train_missing_setting_is_config_error(models, splits, tmp_path):
    settings = {k: v for k, v in SETTINGS.items() if k != "lr"}
    with pytest.raises(ConfigError, match="lr"):
        train("tiny_test", splits["train"], splits["valid"], tmp_path / "x.pt", settings, device="cpu")


def test_infer_writes_every_frame(models, splits, tmp_path):
    ckpt_path = tmp_path / "tiny.pt"
    train("tiny_test", splits["train"], splits["valid"], ckpt_path, SETTINGS, device="cpu",
          model_kwargs={"channels": 4})
    out = tmp_path / "restored" / "tiny_test"
    result = infer("tiny_test", ckpt_path, splits["test"], out, chunk=2, device="cpu")
    assert result["frames"] == 9 and result["clips"] == 2 and result["weights"] == "best"
    for clip, n in (("0003", 5), ("0004", 4)):
        names = sorted(p.name for p in (out / clip).iterdir())
        assert names == [f"{k:04d}.png" for k in range(n)]
        for name in names:
            assert read_png(out / clip / name).shape == (40, 56, 3)
    info = json.loads((out / "_info.json").read_text())
    assert info["method"] == "tiny_test" and info["frames"] == 9 and info["device"].startswith("cpu")
    assert info["seconds"] >= 0

    # a chunked run equals a whole-clip run for a per-frame model
    whole = infer("tiny_test", ckpt_path, splits["test"], tmp_path / "whole", chunk=None, device="cpu")
    assert whole["frames"] == 9
    assert np.array_equal(read_png(out / "0003" / "0004.png"), read_png(tmp_path / "whole" / "0003" / "0004.png"))


def test_infer_zero_parameter_model_reproduces_blur_exactly(models, splits, tmp_path):
    out = tmp_path / "zero"
    infer("zero_test", None, splits["test"], out, chunk=3, device="cpu")
    for clip, n in (("0003", 5), ("0004", 4)):
        for k in range(n):
            assert np.array_equal(read_png(out / clip / f"{k:04d}.png"),
                                  read_png(splits["test"] / "blur" / clip / f"{k:04d}.png"))
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        infer("tiny_test", None, splits["test"], tmp_path / "nope", device="cpu")
    assert not (tmp_path / "nope").exists()


def test_profile_model(models):
    result = profile_model("tiny_test", size=32, frames=2, warmup=1, runs=2, device="cpu")
    assert result["method"] == "tiny_test" and result["params"] == sum(p.numel() for p in TinyNet().parameters())
    assert result["ms_per_frame"] > 0 and result["device"].startswith("cpu:") and "threads" in result["device"]
    assert (result["size"], result["frames"], result["runs"]) == (32, 2, 2)


def test_plot_loss_curves(models, splits, tmp_path):
    from asled.errors import DataError
    from asled.plots import plot_loss_curves, read_train_log

    logs = {}
    for name, method in (("tiny", "tiny_test"), ("zero", "zero_test")):
        logs[name] = tmp_path / f"{name}.csv"
        train(method, splits["train"], splits["valid"], tmp_path / f"{name}.pt", SETTINGS, log_csv=logs[name],
              device="cpu")
    log = read_train_log(logs["tiny"])
    assert list(log["iteration"]) == [1, 2, 3] and list(log["val_iteration"]) == [0, 2, 3]
    out = plot_loss_curves({"TinyNet": logs["tiny"], "Blur": logs["zero"]}, tmp_path / "fig" / "loss.png")
    image = read_png(out)
    assert image.shape == (480, 1200, 3) and image.std() > 0
    assert not list(out.parent.glob(".*tmp"))
    with pytest.raises(DataError, match="missing"):
        plot_loss_curves({"x": tmp_path / "nope.csv"}, tmp_path / "fig" / "none.png")
    assert not (tmp_path / "fig" / "none.png").exists()
