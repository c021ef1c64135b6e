"""Every trained Table 1 method learns: a few Adam steps on one demo clip lower the loss and beat the blur.

Each method is built exactly as the demo trains it (`recipes.demo.model_overrides` of params.yaml: its
demo scale and `identity_start`), then overfits ONE fixed crop of one demo clip (same crop every step;
overfitting is the point) with Adam and the Charbonnier loss, one CPU thread, fixed seeds. Checks:

1. at step 0 the output IS the blurry input (identity start);
2. the Charbonnier loss on the crop after the steps is at most `MAX_LOSS_RATIO` x the step-0 loss;
3. the PSNR of the restored crop beats the blurry input's PSNR by at least `MIN_GAIN_DB`.

A model that does not learn (frozen, detached, a zero learning rate, a dead gradient path) keeps
returning the blurry input: loss ratio exactly 1 and gain exactly 0 dB, so (2) and (3) both fail;
`test_a_model_that_does_not_learn_fails_the_checks` runs the same harness at lr 0 to prove it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from asled.config import load_params, model_overrides
from asled.data.dataset import load_split, to_tensor
from asled.data.demo import generate_demo
from asled.data.prepare import prepare_split
from asled.infer import tensor_to_u8
from asled.losses import charbonnier
from asled.metrics.fr import psnr
from asled.models import build_model

REPO = Path(__file__).resolve().parents[1]

# The 12 trained methods of Table 1 (the blurry-input row has nothing to train).
METHODS = ("mimo_unet", "mimo_unet_pp", "nafnet", "restormer", "ifirnn", "dbn",
           "edvr", "basicvsr", "basicvsr_pp", "dstnet", "refvsr", "asled_net")

# The clip: the demo's frame size (datasets.demo width x height) at every 3rd source frame, the demo
# test split's `source_step` (the paper's blur strength; the train split's step 1 blurs so little that a
# 32x32 crop is ~23 dB and mostly sharp), first training clip, centre CROP x CROP crop.
DEMO = {"width": 128, "height": 80, "frames_per_clip": 21, "clips": {"train": 1, "valid": 0, "test": 0},
        "source_step": 3}
CROP = 32
LR = 1.0e-3
CHARBONNIER_EPS = 1.0e-3

# (frames, Adam steps) per method, set from measured learning curves and step times (one thread). Every
# identity-started model first sits on a plateau (at step 0 only the zeroed output layer has a gradient),
# then drops, so each budget is past its model's drop with headroom (measured gains: see MIN_GAIN_DB).
# The flow- and deformable-alignment models (SPyNet alone costs ~0.05 s per frame pair and step at
# 32x32) train on 2-frame crops, which still exercise alignment and propagation; the rest on 3 frames.
# IFIRNN (8 channels, 2 blocks) had the longest plateau in the curves measured: the most (cheap) steps.
BUDGET = {
    "mimo_unet": (3, 70), "mimo_unet_pp": (3, 70), "nafnet": (3, 50), "restormer": (3, 40),
    "ifirnn": (3, 120), "dbn": (3, 60), "dstnet": (3, 100),
    "edvr": (2, 55), "basicvsr": (2, 25), "basicvsr_pp": (2, 30), "refvsr": (2, 40), "asled_net": (2, 20),
}

# Margins. Measured on this clip at the budgets above (loss ratio / PSNR gain; one thread, 2-core CPU):
#   mimo_unet 0.38/+8.2 dB   mimo_unet_pp 0.20/+13.1  nafnet 0.21/+13.0   restormer 0.47/+5.2
#   ifirnn    0.23/+12.2     dbn          0.64/+3.1   edvr   0.21/+12.1   basicvsr  0.27/+10.1
#   basicvsr_pp 0.31/+9.2    dstnet       0.22/+12.3  refvsr 0.30/+9.2    asled_net 0.35/+8.5
# (refvsr is RefVSR-IR with the demo's narrowed refill: 0.85 at 20 steps, hence 40)
# (edvr repeats the edge frame at clip ends, the official test windows: 0.19/+12.6 with mirrored ones)
# so the weakest (dbn) clears both margins by 2 dB / 0.2. The plateau's length depends on the clip (on
# three other demo clips some of these budgets still sat on it), hence one fixed clip and these margins
# rather than tighter ones. Whole file: ~55 s of one core (~75 s wall on a shared 2-core machine).
MAX_LOSS_RATIO = 0.85  # final Charbonnier loss / step-0 loss
MIN_GAIN_DB = 1.0      # PSNR(restored) - PSNR(blurry input) on the trained crop, dB


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, np.ndarray]:
    """One demo clip's crop: {"blur", "ref", "gt"} uint8 [frames, CROP, CROP, 3] (up to 3 frames)."""
    root = tmp_path_factory.mktemp("learning")
    generate_demo(root / "raw", seed=0, **DEMO)
    prepare_split(root / "raw", "train", root / "train", window=7, stride=7, space="srgb",
                  fov_fraction=0.5, interpolation="bicubic")
    clips = load_split(root / "train")
    frames = clips[min(clips)]
    h, w = frames["blur"].shape[1:3]
    y, x = (h - CROP) // 2, (w - CROP) // 2
    return {k: v[:3, y:y + CROP, x:x + CROP] for k, v in frames.items()}


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clip_psnr(gt: np.ndarray, out: np.ndarray) -> float:
    """PSNR over the whole crop (one MSE over all frames, as the loss averages over all of them)."""
    return psnr(gt.reshape(-1, *gt.shape[2:]), out.reshape(-1, *out.shape[2:]))


def overfit(method: str, clip: dict[str, np.ndarray], frames: int, steps: int, lr: float = LR) -> dict:
    """Train the demo-scale `method` for `steps` Adam steps on `frames` frames of `clip`; measurements."""
    crop = {k: v[:frames] for k, v in clip.items()}
    blur, ref, gt = (to_tensor(crop[k]).unsqueeze(0) for k in ("blur", "ref", "gt"))
    torch.manual_seed(0)
    kwargs = model_overrides(load_params(REPO / "params.yaml"), method)
    assert kwargs.get("identity_start"), f"{method}: the demo recipe no longer starts it as the identity"
    model = build_model(method, **kwargs)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    identity, first_loss = False, float("nan")
    for step in range(steps):
        out = model(blur, ref)
        loss = charbonnier(out, gt, eps=CHARBONNIER_EPS)
        if step == 0:
            identity, first_loss = torch.equal(out, blur), loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        out = model(blur, ref)
        final_loss = charbonnier(out, gt, eps=CHARBONNIER_EPS).item()
    restored = tensor_to_u8(out[0])
    return {
        "identity": identity,
        "ratio": final_loss / first_loss,
        "gain_db": clip_psnr(crop["gt"], restored) - clip_psnr(crop["gt"], crop["blur"]),
        "seconds": time.perf_counter() - start,
    }


@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_on_one_clip_learn(method, clip, one_thread):
    frames, steps = BUDGET[method]
    result = overfit(method, clip, frames, steps)
    summary = (f"{method}: {steps} steps on {frames}x{CROP}x{CROP}: loss ratio {result['ratio']:.3f}, "
               f"PSNR gain {result['gain_db']:+.2f} dB, {result['seconds']:.1f} s")
    print(summary)
    assert result["identity"], f"{method}: the identity-started model does not return the blurry input"
    assert result["ratio"] <= MAX_LOSS_RATIO, summary
    assert result["gain_db"] >= MIN_GAIN_DB, summary


def test_a_model_that_does_not_learn_fails_the_checks(clip, one_thread):
    """The harness itself: at lr 0 (a model that cannot move) both margins fail, exactly."""
    result = overfit("dbn", clip, frames=3, steps=3, lr=0.0)
    assert result["identity"]
    assert result["ratio"] == 1.0 and result["ratio"] > MAX_LOSS_RATIO
    assert result["gain_db"] == 0.0 and result["gain_db"] < MIN_GAIN_DB
