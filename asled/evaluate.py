"""Full-reference evaluation of restored frames against the ground truth of a prepared split.

For every clip and frame of `split_dir/gt`, `restored_dir/<clip>/<frame>.png` is compared with the
ground truth by PSNR, SSIM and (when its weights are staged) LPIPS. Writes one CSV row per frame
(method, clip, frame, psnr, ssim, lpips; lpips empty when unavailable) and a JSON summary beside it.

Means are over all frames of the split (every frame weighs the same), plus per-clip means.
Non-finite values (PSNR of a frame restored exactly) are written to the JSON as the string "inf".
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from asled.data.dataset import index_split
from asled.errors import AsledError, DataError
from asled.io import read_png, write_text
from asled.metrics.fr import LPIPSMetric, psnr, ssim

CSV_COLUMNS = ("method", "clip", "frame", "psnr", "ssim", "lpips")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _lpips_metric(enabled: bool, device: str) -> tuple[LPIPSMetric | None, str | None]:
    if not enabled:
        return None, "disabled (metrics.lpips is false in params.yaml)"
    ok, reason = LPIPSMetric.available()
    if not ok:
        return None, reason
    import torch

    dev = device
    if device == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return LPIPSMetric(device=dev), None
    except AsledError as exc:
        return None, str(exc)


def evaluate(
    method: str,
    restored_dir: Path,
    split_dir: Path,
    out_csv: Path,
    *,
    border: int = 0,
    y_channel: bool = False,
    lpips: bool = True,
    device: str = "auto",
) -> dict:
    """Score `restored_dir` against `split_dir/gt`; write `out_csv` and `out_csv.with_suffix('.json')`.

    Returns {"method", "frames", "psnr", "ssim", "lpips" (float or None), "lpips_unavailable"
    (reason or None), "border", "y_channel", "clips": {clip: {"frames", "psnr", "ssim", "lpips"}}}.
    """
    restored_dir, split_dir, out_csv = Path(restored_dir), Path(split_dir), Path(out_csv)
    if not restored_dir.is_dir():
        raise DataError(f"{restored_dir}: restored frames folder is missing; run the infer step for '{method}'")
    clips = index_split(split_dir)
    metric, lpips_reason = _lpips_metric(lpips, device)

    rows: list[dict[str, Any]] = []
    total = sum(len(c.frames) for c in clips)
    with tqdm(total=total, desc=f"evaluate {method}", unit="frame", dynamic_ncols=True) as bar:
        for clip in clips:
            for frame in clip.frames:
                gt = read_png(split_dir / "gt" / clip.name / frame)
                path = restored_dir / clip.name / frame
                if not path.is_file():
                    raise DataError(f"{path}: restored frame is missing; re-run the infer step for '{method}'")
                restored = read_png(path)
                if restored.shape != gt.shape:
                    raise DataError(
                        f"{path}: restored frame is {restored.shape[1]}x{restored.shape[0]}, ground truth "
                        f"{split_dir / 'gt' / clip.name / frame} is {gt.shape[1]}x{gt.shape[0]}; "
                        f"re-run the infer step for '{method}'"
                    )
                rows.append({
                    "method": method,
                    "clip": clip.name,
                    "frame": Path(frame).stem,
                    "psnr": psnr(gt, restored, border=border, y_channel=y_channel),
                    "ssim": ssim(gt, restored, border=border, y_channel=y_channel),
                    "lpips": metric(gt, restored, border=border) if metric is not None else None,
                })
                bar.update(1)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_COLUMNS})
    write_text(out_csv, buf.getvalue())

    per_clip = {}
    for clip in clips:
        sub = [r for r in rows if r["clip"] == clip.name]
        per_clip[clip.name] = {
            "frames": len(sub),
            "psnr": _mean([r["psnr"] for r in sub]),
            "ssim": _mean([r["ssim"] for r in sub]),
            "lpips": _mean([r["lpips"] for r in sub]),
        }
    summary = {
        "method": method,
        "frames": len(rows),
        "psnr": _mean([r["psnr"] for r in rows]),
        "ssim": _mean([r["ssim"] for r in rows]),
        "lpips": _mean([r["lpips"] for r in rows]),
        "lpips_unavailable": lpips_reason,
        "border": border,
        "y_channel": y_channel,
        "restored_dir": str(restored_dir),
        "split_dir": str(split_dir),
        "clips": per_clip,
    }
    write_text(out_csv.with_suffix(".json"), json.dumps(_json_safe(summary), indent=2) + "\n")
    return summary
