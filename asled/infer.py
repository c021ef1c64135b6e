"""Run a (trained) method over the test clips of a prepared split and write restored PNG frames.

Clips are processed in non-overlapping temporal chunks of `chunk` frames (the whole clip when
`chunk` is None; the last chunk may be shorter). Frames larger than `tile` pixels are restored in
overlapping `tile x tile` pieces (all frames of a chunk together) blended by `asled.tiling`, so that
memory is bounded by the tile, not the frame; `tile=None` (or a tile covering the frame) runs whole
frames. Outputs are clamped to [0, 1], scaled to 8 bits and rounded. The output folder appears only when every frame is written (`asled.io.atomic_dir`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from asled.data.dataset import TestClips
from asled.device import describe_device, resolve_device, synchronize
from asled.errors import AsledError, ConfigError, DataError
from asled.io import atomic_dir, load_tensors, write_png
from asled.models.registry import build_model, count_parameters
from asled.tiling import check_tiling, tiled_forward


# ----------------------------------------------------------------------------- running a model
def tensor_to_u8(frames: torch.Tensor) -> np.ndarray:
    """float `[N, 3, H, W]` in [0, 1] -> uint8 `[N, H, W, 3]` (clamp, scale by 255, round)."""
    return frames.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def run_clip(
    model: torch.nn.Module,
    blur: torch.Tensor,
    ref: torch.Tensor,
    chunk: int | None,
    device: torch.device,
    on_chunk: Callable[[float, int], None] | None = None,
    tile: int | None = None,
    tile_overlap: int = 32,
) -> torch.Tensor:
    """Restore one clip `[N, 3, H, W]` in non-overlapping chunks of `chunk` frames; returns CPU float.

    `on_chunk(seconds, frames)` receives the synchronised forward time of every chunk. Frames larger
    than `tile` are restored tile by tile (`asled.tiling.tiled_forward`).
    """
    n = blur.shape[0]
    step = n if not chunk else int(chunk)
    outs = []
    with torch.inference_mode():
        for s in range(0, n, step):
            b = blur[s : s + step].unsqueeze(0).to(device, non_blocking=True)
            r = ref[s : s + step].unsqueeze(0).to(device, non_blocking=True)
            synchronize(device)
            t0 = time.perf_counter()
            out = tiled_forward(model, b, r, tile, tile_overlap)
            synchronize(device)
            if on_chunk is not None:
                on_chunk(time.perf_counter() - t0, b.shape[1])
            if out.shape != b.shape:
                raise AsledError(f"model returned {tuple(out.shape)} for input {tuple(b.shape)}; expected the same shape")
            outs.append(out[0].float().cpu())
    return torch.cat(outs, 0)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    ckpt = load_tensors(path, missing="checkpoint is missing; run the train step for this method first",
                        unreadable="cannot read checkpoint; delete it and re-run the train step")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise DataError(f"{path}: not an asled checkpoint (no 'state_dict'); re-run the train step")
    return ckpt


def load_model(
    method: str, checkpoint: str | Path | None, device: torch.device, use_best: bool = True
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Build `method` and load its weights; returns the model (eval mode, on `device`) and facts about it."""
    info: dict[str, Any] = {"checkpoint": str(checkpoint) if checkpoint else None, "weights": None}
    if checkpoint is None:
        model = build_model(method)
        if count_parameters(model) > 0:
            raise ConfigError(
                f"method '{method}' has {count_parameters(model)} parameters and needs a checkpoint; "
                "train it first (the train step writes checkpoints/<method>...)"
            )
    else:
        ckpt = load_checkpoint(checkpoint)
        if ckpt.get("method") not in (None, method):
            raise ConfigError(f"{checkpoint}: checkpoint is for method '{ckpt.get('method')}', not '{method}'")
        # the checkpoint's own weights replace any pretrained SPyNet, so its file is not needed here
        kwargs = {k: v for k, v in (ckpt.get("model_kwargs") or {}).items() if k != "spynet_weights"}
        model = build_model(method, **kwargs)
        state = ckpt["state_dict"]
        info["weights"] = "last"
        if use_best and ckpt.get("best_state_dict") is not None:
            state, info["weights"] = ckpt["best_state_dict"], "best"
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DataError(
                f"{checkpoint}: weights do not fit model '{method}' ({str(exc).splitlines()[0]}); "
                "the architecture changed since training: re-run the train step"
            ) from exc
        info["iteration"] = ckpt.get("iteration")
    info["params"] = count_parameters(model)
    return model.to(device).eval(), info


# ----------------------------------------------------------------------------- the step
class Restorer:
    """A trained method ready to restore clips: checked settings, loaded weights, summed forward time.

    Shared by test-split inference and real captures, so both run exactly the same code path."""

    def __init__(self, method: str, checkpoint: Path | None, *, chunk: int | None, device: str,
                 use_best: bool = True, tile: int | None = None, tile_overlap: int = 32):
        if chunk is not None and int(chunk) < 1:
            raise ConfigError(f"chunk must be a positive number of frames or null, got {chunk}")
        try:
            check_tiling(tile, tile_overlap)
        except ValueError as exc:
            raise ConfigError(f"test tiling: {exc}") from None
        self.method, self.chunk, self.tile, self.tile_overlap = method, chunk, tile, tile_overlap
        self.device = resolve_device(device)
        self.model, self.info = load_model(method, checkpoint, self.device, use_best)
        self.seconds, self.frames = 0.0, 0

    def _count(self, seconds: float, frames: int) -> None:
        self.seconds += seconds
        self.frames += frames

    def restore(self, blur: torch.Tensor, ref: torch.Tensor) -> np.ndarray:
        """`[T, 3, H, W]` float clips -> `[T, H, W, 3]` uint8 restored frames."""
        return tensor_to_u8(run_clip(self.model, blur, ref, self.chunk, self.device, self._count,
                                     tile=self.tile, tile_overlap=self.tile_overlap))

    def facts(self) -> dict:
        """What `_info.json` records about the run."""
        return {
            "method": self.method,
            **self.info,
            "device": describe_device(self.device),
            "frames": self.frames,
            "chunk": self.chunk,
            "tile": self.tile,
            "tile_overlap": self.tile_overlap,
            "seconds": self.seconds,
            "ms_per_frame": 1000.0 * self.seconds / max(self.frames, 1),
        }


def infer(
    method: str,
    checkpoint: Path | None,
    split_dir: Path,
    out_dir: Path,
    *,
    chunk: int | None = 7,
    device: str = "auto",
    use_best: bool = True,
    tile: int | None = None,
    tile_overlap: int = 32,
) -> dict:
    """Restore every clip of `split_dir` with `method`; write `out_dir/<clip>/<frame>.png` and `_info.json`.

    Returns the same facts as `_info.json`: method, checkpoint, weights (best/last), device, clips,
    frames, chunk, tile, tile_overlap, seconds (summed synchronised forward time), ms_per_frame,
    seconds_total.
    """
    t_start = time.perf_counter()
    restorer = Restorer(method, checkpoint, chunk=chunk, device=device, use_best=use_best, tile=tile,
                        tile_overlap=tile_overlap)
    clips = TestClips(split_dir)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        with tqdm(total=clips.num_frames, desc=f"infer {method}", unit="frame", dynamic_ncols=True) as bar:
            for name, frames, data in clips:
                restored = restorer.restore(data["blur"], data["ref"])
                (tmp / name).mkdir()
                for frame, image in zip(frames, restored):
                    write_png(tmp / name / frame, image)
                bar.update(len(frames))
        result = {**restorer.facts(), "split_dir": str(split_dir), "clips": len(clips),
                  "seconds_total": time.perf_counter() - t_start}
        (tmp / "_info.json").write_text(json.dumps(result, indent=2) + "\n")
    result["out_dir"] = str(out_dir)
    return result
