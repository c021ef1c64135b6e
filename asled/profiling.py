"""Parameters and run time per frame (Table 1's timing protocol: ms per frame at 256x256).

The input is a real photograph (scikit-image's astronaut, resized to `size x size`) repeated over
`frames` frames, for both the blurry and the reference stream: no random numbers are involved. After
`warmup` untimed passes, `runs` passes of the whole `[1, frames, 3, size, size]` clip are timed
(synchronised on CUDA); the result is the median run time divided by `frames`.

FLOPs (`asled.flops`): one forward of the same clip shape counted on the meta device, reported as GFLOP
per frame (FLOP = 2 per multiply-accumulate); with the median time it gives the achieved TFLOP/s and
the MFU against a matrix-multiply peak measured in this process (bf16 on CUDA, fp32 on CPU).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from asled.errors import ConfigError
from asled.flops import FLOP_CONVENTION, measure_peak, safe_model_flops, utilisation
from asled.device import describe_device, resolve_device, synchronize
from asled.infer import load_checkpoint, load_model
from asled.models.registry import build_model, count_parameters


def profile_input(size: int, frames: int) -> torch.Tensor:
    """The astronaut photograph, `size x size`, as `[1, frames, 3, size, size]` float in [0, 1]."""
    from skimage import data

    image = data.astronaut()
    interp = cv2.INTER_AREA if size < min(image.shape[:2]) else cv2.INTER_CUBIC
    image = cv2.resize(image, (size, size), interpolation=interp)
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255.0)
    return t.unsqueeze(0).unsqueeze(0).expand(1, frames, 3, size, size).contiguous()


def time_forward(model: torch.nn.Module, clip: torch.Tensor, warmup: int, runs: int) -> list[float]:
    """Milliseconds of each of `runs` synchronised forward passes after `warmup` untimed ones."""
    timings = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            synchronize(clip.device)
            t0 = time.perf_counter()
            model(clip, clip)
            synchronize(clip.device)
            if i >= warmup:
                timings.append(1000.0 * (time.perf_counter() - t0))
    return timings


def profile_model(
    method: str,
    *,
    size: int = 256,
    frames: int = 7,
    warmup: int = 2,
    runs: int = 5,
    device: str = "auto",
    model_kwargs: dict | None = None,
    checkpoint: str | Path | None = None,
    timed: bool = True,
) -> dict:
    """Returns {"method", "params", "ms_per_frame", "gflops_per_frame", "flops" (the count's details),
    "tflops_per_s", "mfu", "peak", "device", "size", "frames", "runs", "warmup", "timings_ms", "timing" (the
    protocol in words), "torch"}. `timed=False` counts FLOPs only (no forward pass, no peak): the time and
    utilisation fields are then None, e.g. for a full-size model on a CPU, where one pass takes minutes."""
    if size < 1 or frames < 1 or runs < 1 or warmup < 0:
        raise ConfigError(f"profile settings must be positive (size {size}, frames {frames}, runs {runs}, warmup {warmup})")
    dev = resolve_device(device)
    if checkpoint is not None:  # an imported official (or trained) file: its configuration, its weights
        model_kwargs = load_checkpoint(checkpoint).get("model_kwargs") or {}
    kwargs = dict(model_kwargs or {})
    flops = safe_model_flops(lambda: build_model(method, **kwargs), (1, frames, 3, size, size))
    timings, peak, speed = [], None, {"tflops_per_s": None, "mfu": None}
    if not timed:
        with torch.device("meta"):  # shapes only: a full-size model's parameters are counted without memory
            params = count_parameters(build_model(method, **kwargs))
    else:
        if checkpoint is not None:
            model, _ = load_model(method, checkpoint, dev)
        else:
            model = build_model(method, **kwargs).to(dev).eval()
        params = count_parameters(model)
        timings = time_forward(model, profile_input(size, frames).to(dev), warmup, runs)
        peak = measure_peak(dev)
        speed = utilisation(flops["flops"], statistics.median(timings) / 1000.0, peak)
    return {
        "method": method,
        "params": params,
        "model_kwargs": kwargs,  # the recipe's scale and init (empty: the catalogue model)
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "ms_per_frame": statistics.median(timings) / frames if timed else None,
        "gflops_per_frame": None if flops["flops"] is None else flops["flops"] / frames / 1e9,
        "flops": {**flops, "convention": FLOP_CONVENTION},
        **speed,  # tflops_per_s, mfu: the forward's FLOPs over the median time, vs the measured peak
        "peak": peak,
        "device": describe_device(dev),
        "size": size,
        "frames": frames,
        "runs": runs if timed else 0,
        "warmup": warmup if timed else 0,
        "timings_ms": timings,
        "timing": f"median of {runs} synchronised forward passes of a [1, {frames}, 3, {size}, {size}] clip after "
        f"{warmup} warm-up pass(es), inference mode, fp32, divided by {frames} frames" if timed
        else "not timed (FLOPs only)",
        "torch": torch.__version__,
    }
