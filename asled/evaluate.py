"""Full-reference evaluation of restored frames against the ground truth of a prepared split.

For every clip and frame of `split_dir/gt`, `restored_dir/<clip>/<frame>.png` is compared with the
ground truth by PSNR, SSIM (under the `metrics.ssim` convention) and (when its weights are staged)
LPIPS, and consecutive restored frames by the flow-warping error (`asled.metrics.temporal`). Writes
one CSV row per frame (method, clip, frame, psnr, ssim, lpips, warp_error; lpips empty when
unavailable; warp_error belongs to the pair (frame, next frame) and is empty on a clip's last frame)
and a JSON summary beside it.

Means: PSNR / SSIM / LPIPS over all frames of the split (every frame weighs the same), the warping
error over all consecutive pairs; per-clip means too, with their frame and pair counts (the
statistics of the tables resample clips weighted by those counts). Non-finite values (PSNR of a
frame restored exactly) are written to the JSON as the string "inf".
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asled.data.dataset import index_split
from asled.errors import ConfigError, DataError
from asled.io import csv_text, read_png, write_text
from asled.metrics.conventions import DEFAULT_SSIM, check_convention
from asled.metrics.fr import load_lpips, psnr
from asled.metrics.fr import ssim as ssim_index
from asled.metrics.temporal import FLOW_SOURCES, pair_flow, warping_error

CSV_COLUMNS = ("method", "clip", "frame", "psnr", "ssim", "lpips", "warp_error")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def json_safe(obj: Any) -> Any:
    """Replace NaN by None and infinities by "inf"/"-inf" so the result is strict JSON."""
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


class _Temporal:
    """Warping errors of consecutive frames of one clip, fed one frame at a time (bounded memory)."""

    def __init__(self, flow_source: str) -> None:
        self.flow_source = flow_source
        self.prev: tuple[np.ndarray, np.ndarray] | None = None

    def push(self, gt: np.ndarray, restored: np.ndarray) -> tuple[float | None, float | None] | None:
        """(restored error, ground-truth error) of the pair (previous frame, this one); None for a first frame."""
        prev, self.prev = self.prev, (gt, restored)
        if prev is None:
            return None
        gt_flow, gt_mask = pair_flow(prev[0], gt)
        if self.flow_source == "gt":
            flow, mask = gt_flow, gt_mask
        else:
            flow, mask = pair_flow(prev[1], restored)
        return warping_error(prev[1], restored, flow, mask), warping_error(prev[0], gt, gt_flow, gt_mask)


def _check_inputs(method: str, restored_dir: Path, ssim: str, temporal_flow: str) -> None:
    """Settings and the restored folder, checked before any frame is read."""
    if temporal_flow not in FLOW_SOURCES:
        raise ConfigError(f"metrics.temporal_flow must be one of {FLOW_SOURCES}, got '{temporal_flow}'")
    check_convention(ssim)
    if not restored_dir.is_dir():
        raise DataError(f"{restored_dir}: restored frames folder is missing; run the infer step for '{method}'")


def _read_restored(path: Path, gt: np.ndarray, gt_path: Path, method: str) -> np.ndarray:
    """The restored frame at `path`, checked to exist and to match the ground truth's size."""
    if not path.is_file():
        raise DataError(f"{path}: restored frame is missing; re-run the infer step for '{method}'")
    restored = read_png(path)
    if restored.shape != gt.shape:
        raise DataError(
            f"{path}: restored frame is {restored.shape[1]}x{restored.shape[0]}, ground truth "
            f"{gt_path} is {gt.shape[1]}x{gt.shape[0]}; re-run the infer step for '{method}'"
        )
    return restored


def _score_clips(method: str, clips: list, restored_dir: Path, split_dir: Path,
                 score: Callable[[np.ndarray, np.ndarray], dict], temporal_flow: str | None
                 ) -> tuple[list[dict[str, Any]], dict[str, list[float | None]]]:
    """One row per frame (`score`'s metrics; the warping error of the pair it starts, None on a clip's last
    frame or with `temporal_flow` None), and per clip the ground truth's own warping errors."""
    rows: list[dict[str, Any]] = []
    gt_errors: dict[str, list[float | None]] = {}
    total = sum(len(c.frames) for c in clips)
    with tqdm(total=total, desc=f"evaluate {method}", unit="frame", dynamic_ncols=True) as bar:
        for clip in clips:
            tracker = _Temporal(temporal_flow) if temporal_flow is not None else None
            gt_errors[clip.name] = []
            for frame in clip.frames:
                gt_path = split_dir / "gt" / clip.name / frame
                gt = read_png(gt_path)
                restored = _read_restored(restored_dir / clip.name / frame, gt, gt_path, method)
                pair = tracker.push(gt, restored) if tracker is not None else None
                if pair is not None:
                    rows[-1]["warp_error"] = pair[0]
                    gt_errors[clip.name].append(pair[1])
                rows.append({"method": method, "clip": clip.name, "frame": Path(frame).stem, **score(gt, restored),
                             "warp_error": None})
                bar.update(1)
    return rows, gt_errors


def _means(rows: list[dict[str, Any]], gt_errors: list[float | None]) -> dict[str, Any]:
    """Frame count and means of `rows` (a clip's, or the split's), with the warping errors' pair count."""
    warp = [r["warp_error"] for r in rows if r["warp_error"] is not None]
    return {
        "frames": len(rows),
        "psnr": _mean([r["psnr"] for r in rows]),
        "ssim": _mean([r["ssim"] for r in rows]),
        "lpips": _mean([r["lpips"] for r in rows]),
        "warp_error": _mean(warp),
        "warp_error_gt": _mean(gt_errors),
        "warp_pairs": len(warp),
    }


def _temporal_unavailable(temporal: bool, pairs: int) -> str | None:
    if not temporal:
        return "disabled (metrics.temporal is false in params.yaml)"
    if not pairs:
        return "no clip has two consecutive frames with a non-occluded pixel to compare"
    return None


def evaluate(
    method: str,
    restored_dir: Path,
    split_dir: Path,
    out_csv: Path,
    *,
    border: int = 0,
    y_channel: bool = False,
    ssim: str = DEFAULT_SSIM,
    lpips: bool = True,
    lpips_net: str = "alex",
    temporal: bool = True,
    temporal_flow: str = "gt",
    device: str = "auto",
) -> dict:
    """Score `restored_dir` against `split_dir/gt`; write `out_csv` and `out_csv.with_suffix('.json')`.

    Returns {"method", "frames", "psnr", "ssim", "lpips" (float or None), "lpips_unavailable"
    (reason or None), "lpips_net", "lpips_weights" (the staged trunk used), "warp_error", "warp_error_gt"
    (the ground truth's own), "warp_pairs",
    "temporal_unavailable", "temporal_flow", "border", "y_channel", "ssim_convention" (`ssim`),
    "clips": {clip: {"frames", "psnr", "ssim", "lpips", "warp_error", "warp_error_gt", "warp_pairs"}}}.
    """
    restored_dir, split_dir, out_csv = Path(restored_dir), Path(split_dir), Path(out_csv)
    _check_inputs(method, restored_dir, ssim, temporal_flow)
    clips = index_split(split_dir)
    metric, lpips_reason = load_lpips(lpips, device, lpips_net)

    def score(gt: np.ndarray, restored: np.ndarray) -> dict[str, float | None]:
        return {
            "psnr": psnr(gt, restored, border=border, y_channel=y_channel),
            "ssim": ssim_index(gt, restored, border=border, y_channel=y_channel, convention=ssim),
            "lpips": metric(gt, restored, border=border) if metric is not None else None,
        }

    rows, gt_errors = _score_clips(method, clips, restored_dir, split_dir, score, temporal_flow if temporal else None)
    split = _means(rows, [e for errs in gt_errors.values() for e in errs])
    summary = {
        "method": method,
        **{k: split[k] for k in ("frames", "psnr", "ssim", "lpips")},
        "lpips_unavailable": lpips_reason,
        "lpips_net": lpips_net,
        "lpips_weights": metric.weights if metric is not None else None,
        **{k: split[k] for k in ("warp_error", "warp_error_gt", "warp_pairs")},
        "temporal_unavailable": _temporal_unavailable(temporal, split["warp_pairs"]),
        "temporal_flow": temporal_flow,
        "border": border,
        "y_channel": y_channel,
        "ssim_convention": ssim,
        "restored_dir": str(restored_dir),
        "split_dir": str(split_dir),
        "clips": {clip.name: _means([r for r in rows if r["clip"] == clip.name], gt_errors[clip.name])
                  for clip in clips},
    }
    write_text(out_csv, csv_text(rows, CSV_COLUMNS))
    write_text(out_csv.with_suffix(".json"), json.dumps(json_safe(summary), indent=2) + "\n")
    return summary
