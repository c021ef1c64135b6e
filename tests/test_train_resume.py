"""Resumable training: SIGKILL mid-run then rerun, and SIGTERM -> resume file + exit 75 -> rerun.

Every run is the real `asled train` CLI in a subprocess, on a tiny prepared split, with a tiny model
that reaches the registry the way a user's own method does: an `asled.models` entry point of a
package on PYTHONPATH (`tiny_plugin`). Its forward pass may sleep (`ASLED_TINY_DELAY` seconds per
training forward) so that a signal reliably lands mid-run; sleeping changes no number.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO
from test_dataset import make_split

from asled.train import RESUME_EXIT_CODE

METHOD = "tiny_plugin_net"
TRAIN = {"iterations": 40, "batch_size": 2, "crop": 16, "frames": 3, "lr": 1e-3, "eta_min": 1e-5,
         "val_every": 10, "checkpoint_every": 5, "num_workers": 0, "devices": 1, "device": "cpu"}

PLUGIN = '''
"""A tiny per-frame model registered through an `asled.models` entry point (tests only)."""
import os
import time

import torch
from torch import nn


class TinyPluginNet(nn.Module):
    def __init__(self, channels: int = 8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(6, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1))
        self.delay = float(os.environ.get("ASLED_TINY_DELAY", "0"))

    def forward(self, blur, ref):
        if self.delay and self.training:
            time.sleep(self.delay)
        b, t, c, h, w = blur.shape
        x = torch.cat([blur, ref], 2).reshape(b * t, 2 * c, h, w)
        return blur + self.body(x).reshape(b, t, c, h, w)
'''


def install_plugin(site: Path) -> Path:
    """`tiny_plugin` + a dist-info declaring its entry point: importlib.metadata finds it on PYTHONPATH."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "tiny_plugin.py").write_text(PLUGIN)
    info = site / "tiny_plugin-0.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-plugin\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[asled.models]\n{METHOD} = tiny_plugin:TinyPluginNet\n")
    return site


def make_workspace(root: Path, site: Path, **train) -> Path:
    """A run folder: params.yaml with the tiny recipe, and prepared train/valid splits."""
    prepared = root / "data" / "prepared" / "demo"
    make_split(prepared / "train", {"0000": 6, "0001": 5})
    make_split(prepared / "valid", {"0002": 5})
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"] = "demo"
    params["recipes"]["demo"]["train"].update({**TRAIN, **train})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".site").symlink_to(site)
    return root


def env(root: Path, delay: float = 0.0) -> dict[str, str]:
    e = dict(os.environ)
    e.update(PYTHONPATH=os.pathsep.join([str(root / ".site"), e.get("PYTHONPATH", "")]),
             ASLED_TINY_DELAY=str(delay), OMP_NUM_THREADS="1")
    return e


def asled_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "asled", "train", METHOD, "--seed", "0", "--threads", "1", *args]


def run_to_end(root: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(asled_cmd(), cwd=root, env=env(root), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def files(root: Path) -> dict[str, Path]:
    return {
        "ckpt": root / "checkpoints" / "demo" / METHOD / "seed0.pt",
        "resume": root / "checkpoints" / "demo" / METHOD / "seed0.resume.pt",
        "csv": root / "results" / "train_logs" / "demo" / METHOD / "seed0.csv",
        "tb": root / "results" / "tensorboard" / "demo" / METHOD / "seed0",
    }


def start_and_wait_for_resume_file(root: Path, delay: float = 0.05) -> subprocess.Popen:
    proc = subprocess.Popen(asled_cmd(), cwd=root, env=env(root, delay), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not files(root)["resume"].exists():
        if proc.poll() is not None:
            raise AssertionError(f"training ended before its first resume checkpoint:\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("no resume checkpoint within 240 s")
        time.sleep(0.02)
    return proc


def assert_same_result(root: Path, reference: Path) -> None:
    mine, ref = torch.load(files(root)["ckpt"], weights_only=True), torch.load(files(reference)["ckpt"], weights_only=True)
    assert mine["iteration"] == ref["iteration"] == TRAIN["iterations"]
    for key in ("state_dict", "best_state_dict"):
        assert mine[key].keys() == ref[key].keys()
        for name, tensor in ref[key].items():
            assert torch.equal(mine[key][name], tensor), f"{key}.{name} differs"
    assert mine["best_val_psnr"] == ref["best_val_psnr"] and mine["best_iteration"] == ref["best_iteration"]
    assert files(root)["csv"].read_bytes() == files(reference)["csv"].read_bytes()
    assert not files(root)["resume"].exists()  # removed once the final checkpoint is written


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, site) -> Path:
    """An uninterrupted run."""
    root = make_workspace(tmp_path_factory.mktemp("uninterrupted"), site)
    result = run_to_end(root)
    assert "resuming" not in result.stderr
    f = files(root)
    assert f["ckpt"].is_file() and f["csv"].is_file() and not f["resume"].exists()
    assert list(f["tb"].glob("events.out.tfevents.*"))  # TensorBoard scalars
    return root


# acceptance test, ~10 s: part of the default run
def test_sigkill_mid_run_then_rerun_equals_uninterrupted_run(tmp_path, site, reference):
    root = make_workspace(tmp_path, site)
    proc = start_and_wait_for_resume_file(root)
    time.sleep(0.12)  # a few more steps, lost with the kill and redone after the resume
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    f = files(root)
    assert not f["ckpt"].exists() and not f["csv"].exists(), "the run finished before it was killed"
    saved = torch.load(f["resume"], weights_only=True)
    assert 0 < saved["iteration"] < TRAIN["iterations"] and saved["reason"] == "periodic"

    result = run_to_end(root)
    assert f"at iteration {saved['iteration']}/{TRAIN['iterations']}" in result.stderr
    assert_same_result(root, reference)


# acceptance test, ~10 s: part of the default run
def test_sigterm_writes_resume_file_exits_75_and_rerun_resumes(tmp_path, site, reference):
    root = make_workspace(tmp_path, site)
    proc = start_and_wait_for_resume_file(root)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == RESUME_EXIT_CODE == 75, stderr[-3000:]
    assert "SIGTERM" in stderr and "resume" in stderr
    f = files(root)
    assert not f["ckpt"].exists() and not f["csv"].exists()
    saved = torch.load(f["resume"], weights_only=True)
    assert saved["reason"] == "stopped by SIGTERM" and 0 < saved["iteration"] < TRAIN["iterations"]
    assert len(saved["log"]) == saved["iteration"] + 1  # + the validation before the first step

    result = run_to_end(root)
    assert f"resuming {METHOD} seed 0 at iteration {saved['iteration']}/" in result.stderr
    assert_same_result(root, reference)


def test_stale_resume_file_is_ignored_and_a_matching_one_is_used(tmp_path, monkeypatch, capsys):
    """In-process: a resume file written under another learning rate is ignored; one under the same settings is used."""
    from test_train import SETTINGS

    from asled.models import registry
    from asled.train import Trainer, resume_path, train

    monkeypatch.setitem(registry.catalog(), "tiny_test", {"target": "test_train:TinyNet", "kwargs": {"channels": 4}})
    train_dir = make_split(tmp_path / "train", {"0000": 6, "0001": 5})
    valid_dir = make_split(tmp_path / "valid", {"0002": 5})
    settings = {**SETTINGS, "iterations": 4, "checkpoint_every": 0}

    def partial(path: Path, **changes) -> None:
        trainer = Trainer("tiny_test", train_dir, valid_dir, path, {**settings, **changes}, device="cpu")
        trainer.step(next(iter(trainer.loader())))
        trainer.save_resume("periodic")

    fresh = train("tiny_test", train_dir, valid_dir, tmp_path / "fresh.pt", settings, device="cpu")
    assert fresh["resumed_from"] is None

    stale = tmp_path / "stale.pt"
    partial(stale, lr=5e-4)
    capsys.readouterr()
    summary = train("tiny_test", train_dir, valid_dir, stale, settings, device="cpu")
    assert summary["resumed_from"] is None and "ignoring" in capsys.readouterr().err
    assert not resume_path(stale).exists()
    a, b = torch.load(stale, weights_only=True), torch.load(tmp_path / "fresh.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], v) for k, v in b["state_dict"].items())

    matching = tmp_path / "matching.pt"
    partial(matching, num_workers=0, checkpoint_every=3)  # engine-only keys may differ
    summary = train("tiny_test", train_dir, valid_dir, matching, settings, device="cpu")
    assert summary["resumed_from"] == 1 and summary["iterations"] == 4
    c = torch.load(matching, weights_only=True)
    assert all(torch.equal(c["state_dict"][k], v) for k, v in b["state_dict"].items())
