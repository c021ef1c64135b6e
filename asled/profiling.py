"""Parameters and run time per frame (Table 1's timing protocol: ms per frame at 256x256).

The input is a real photograph (scikit-image's astronaut, resized to `size x size`) repeated over
`frames` frames, for both the blurry and the reference stream: no random numbers are involved. After
`warmup` untimed passes, `runs` passes of the whole `[1, frames, 3, size, size]` clip are timed
(synchronised on CUDA); the result is the median run time divided by `frames`.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from asled.errors import ConfigError
from asled.infer import (
    describe_device,
    load_checkpoint,
    load_model,
    resolve_device,
    synchronize,
)
from asled.models.registry import build_model, count_parameters


def profile_input(size: int, frames: int) -> torch.Tensor:
    """The astronaut photograph, `size x size`, as `[1, frames, 3, size, size]` float in [0, 1]."""
    from skimage import data

    image = data.astronaut()
    interp = cv2.INTER_AREA if size < min(image.shape[:2]) else cv2.INTER_CUBIC
    image = cv2.resize(image, (size, size), interpolation=interp)
    t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255.0)
    return t.unsqueeze(0).unsqueeze(0).expand(1, frames, 3, size, size).contiguous()


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
) -> dict:
    """Returns {"method", "params", "ms_per_frame", "device", "size", "frames", "runs", "warmup", "timings_ms",
    "timing" (the protocol in words), "torch"}."""
    if size < 1 or frames < 1 or runs < 1 or warmup < 0:
        raise ConfigError(f"profile settings must be positive (size {size}, frames {frames}, runs {runs}, warmup {warmup})")
    dev = resolve_device(device)
    if checkpoint is not None:  # an imported official (or trained) file: its configuration, its weights
        model_kwargs = load_checkpoint(checkpoint).get("model_kwargs") or {}
        model, _ = load_model(method, checkpoint, dev)
    else:
        model = build_model(method, **(model_kwargs or {})).to(dev).eval()
    clip = profile_input(size, frames).to(dev)
    timings = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            synchronize(dev)
            t0 = time.perf_counter()
            model(clip, clip)
            synchronize(dev)
            if i >= warmup:
                timings.append(1000.0 * (time.perf_counter() - t0))
    return {
        "method": method,
        "params": count_parameters(model),
        "model_kwargs": dict(model_kwargs or {}),  # the recipe's scale and init (empty: the catalogue model)
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "ms_per_frame": statistics.median(timings) / frames,
        "device": describe_device(dev),
        "size": size,
        "frames": frames,
        "runs": runs,
        "warmup": warmup,
        "timings_ms": timings,
        "timing": f"median of {runs} synchronised forward passes of a [1, {frames}, 3, {size}, {size}] clip after "
        f"{warmup} warm-up pass(es), inference mode, fp32, divided by {frames} frames",
        "torch": torch.__version__,
    }
