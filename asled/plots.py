"""Figures of training runs: loss curves (and validation PSNR) from the CSV logs `asled train` writes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from asled.errors import DataError
from asled.io import write_png


def read_train_log(path: str | Path) -> dict[str, np.ndarray]:
    """A training CSV (iteration, loss, lr, val_psnr) as arrays; blank cells are dropped per column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: training log is missing; run the train step for this method first")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"iteration", "loss", "val_psnr"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: not an asled training log (no {sorted(missing)} column); re-run the train step")
        rows = list(reader)
    loss = [(int(r["iteration"]), float(r["loss"])) for r in rows if r["loss"] not in ("", None)]
    val = [(int(r["iteration"]), float(r["val_psnr"])) for r in rows if r["val_psnr"] not in ("", None)]
    return {
        "iteration": np.array([i for i, _ in loss], dtype=np.int64),
        "loss": np.array([v for _, v in loss], dtype=np.float64),
        "val_iteration": np.array([i for i, _ in val], dtype=np.int64),
        "val_psnr": np.array([v for _, v in val], dtype=np.float64),
    }


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to `window` values (shorter at the start), same length as `values`."""
    if window <= 1 or len(values) == 0:
        return values.astype(np.float64)
    cumsum = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - window)
    return (cumsum[idx] - cumsum[start]) / (idx - start)


def plot_loss_curves(csv_paths: dict[str, Path], out: Path) -> Path:
    """Training loss (log scale; raw and a moving average) and validation PSNR per run, as one PNG.

    `csv_paths` maps a legend label to a training CSV. A run without loss values (a model with no
    parameters) is listed in the legend as "not trained". Written atomically as 8-bit RGB; returns `out`.
    """
    if not csv_paths:
        raise DataError(f"{out}: no training logs given to plot")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logs = {label: read_train_log(path) for label, path in csv_paths.items()}
    fig = Figure(figsize=(10, 4), dpi=120, layout="constrained")
    canvas = FigureCanvasAgg(fig)
    ax_loss, ax_val = fig.subplots(1, 2)
    for index, (label, log) in enumerate(logs.items()):
        color = f"C{index % 10}"
        if len(log["loss"]):
            window = max(1, len(log["loss"]) // 50)
            ax_loss.plot(log["iteration"], log["loss"], color=color, alpha=0.25, linewidth=0.8)
            ax_loss.plot(log["iteration"], moving_average(log["loss"], window), color=color, linewidth=1.5,
                         label=label if window == 1 else f"{label} (mean of {window})")
        else:
            ax_loss.plot([], [], color=color, label=f"{label}: not trained")
        if len(log["val_psnr"]):
            ax_val.plot(log["val_iteration"], log["val_psnr"], "o-", color=color, markersize=3, label=label)
    if any(len(log["loss"]) and np.all(log["loss"] > 0) for log in logs.values()):
        ax_loss.set_yscale("log")
    ax_loss.set(title="Training loss (Charbonnier)", xlabel="iteration", ylabel="loss")
    ax_val.set(title="Validation PSNR", xlabel="iteration", ylabel="PSNR (dB)")
    ax_loss.legend(fontsize="small")
    if any(len(log["val_psnr"]) for log in logs.values()):
        ax_val.legend(fontsize="small")
    for ax in (ax_loss, ax_val):
        ax.grid(True, alpha=0.3)
    canvas.draw()
    out = Path(out)
    # 8-bit RGB like every other image of the project (matplotlib's own PNG writer adds alpha)
    write_png(out, np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[:, :, :3]))
    return out
