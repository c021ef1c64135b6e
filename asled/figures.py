"""Figures and report tables built from the pipeline's results (the `asled figures` verbs).

Every figure is drawn from files earlier steps wrote: the prepared test split, restored frames,
training logs and the compiled tables. Nothing is estimated here; a value a table leaves empty
(a confidence interval that was not computed, a time that was not measured) is left out of the
plot and the figure says so.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from asled import config
from asled.errors import DataError
from asled.io import atomic_path, list_clips, list_frames, read_png, write_png

def _save(fig, out: str | Path) -> Path:
    """Render a matplotlib Figure to an RGB PNG, atomically (Agg canvas: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    # 8-bit RGB like every other PNG of the pipeline (matplotlib's own PNGs carry alpha)
    rgb = np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
    write_png(out, rgb)
    return Path(out)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _finite(value) -> bool:
    return isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)


def read_table(csv_path: str | Path) -> pd.DataFrame:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: table is missing; build it first (snakemake {csv_path})")
    df = pd.read_csv(csv_path)
    missing = {"label", "psnr"} - set(df.columns)
    if missing:
        raise DataError(f"{csv_path}: not a compiled asled table (no {sorted(missing)} column); re-run `asled table`")
    return df


# --- qualitative crops ------------------------------------------------------------------------------


def worst_blur_window(blur: np.ndarray, gt: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the `size` x `size` window where the blurry frame differs most from GT.

    That is where deblurring has the most to do, so it is the informative place to look.
    """
    err = np.abs(blur.astype(np.float32) - gt.astype(np.float32)).mean(axis=2)
    box = cv2.boxFilter(err, -1, (size, size), normalize=True, borderType=cv2.BORDER_REPLICATE)
    h, w = err.shape
    half = size // 2
    valid = box[half : h - size + half + 1, half : w - size + half + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x)


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def qualitative_panel(
    split_dir: str | Path,
    restored: dict[str, Path],
    out: str | Path,
    *,
    clips: int = 2,
    crop: int | None = None,
) -> Path:
    """One row per test clip: blurry, reference, each method's restoration, ground truth, same crop.

    The frame is the clip's middle frame; the crop (default: half the shorter side, at most 256)
    sits where blur and ground truth differ most. Each restoration is titled with its PSNR on the crop.
    `restored` maps a method label to its restored folder (`<folder>/<clip>/<frame>.png`).
    """
    split_dir = Path(split_dir)
    names = list_clips(split_dir / "gt")[:clips]
    if not names:
        raise DataError(f"{split_dir / 'gt'}: no test clips to show")
    columns = ["Blurry (W)", "Reference (UW)", *restored, "Ground truth"]
    fig = _figure(2.0 * len(columns), 2.2 * len(names))
    axes = np.atleast_2d(fig.subplots(len(names), len(columns), squeeze=False))
    for row, clip in enumerate(names):
        frames = list_frames(split_dir / "gt" / clip)
        frame = frames[len(frames) // 2].name
        gt = read_png(split_dir / "gt" / clip / frame)
        blur = read_png(split_dir / "blur" / clip / frame)
        size = crop or min(256, min(gt.shape[:2]) // 2)
        size = min(size, *gt.shape[:2])
        y, x = worst_blur_window(blur, gt, size)
        window = (slice(y, y + size), slice(x, x + size))
        images = {"Blurry (W)": blur, "Reference (UW)": read_png(split_dir / "ref" / clip / frame)}
        for label, folder in restored.items():
            path = Path(folder) / clip / frame
            if not path.is_file():
                raise DataError(f"{path}: restored frame is missing; re-run inference for {label}")
            images[label] = read_png(path)
        images["Ground truth"] = gt
        for col, label in enumerate(columns):
            ax = axes[row, col]
            patch = images[label][window]
            ax.imshow(patch, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            title = label
            if label not in ("Reference (UW)", "Ground truth"):
                title += f"\n{psnr_u8(patch, gt[window]):.2f} dB"
            if col == 0:
                ax.set_ylabel(f"clip {clip}, frame {frame[:-4]}\ncrop {size}px at ({x}, {y})", fontsize=8)
            ax.set_title(title, fontsize=8)
    fig.suptitle("Test crops where the blur is strongest (PSNR on the crop)", fontsize=10)
    return _save(fig, out)


# --- bar chart and scatter from the compiled table -----------------------------------------------------


def psnr_bar_chart(table_csv: str | Path, out: str | Path) -> Path:
    """PSNR per method with its bootstrap confidence interval (where the table has one) and the paper's value."""
    df = read_table(table_csv)
    fig = _figure(max(4.0, 1.2 * len(df) + 2), 4.0)
    ax = fig.subplots()
    x = np.arange(len(df))
    psnr = pd.to_numeric(df["psnr"], errors="coerce").to_numpy(dtype=float)
    ax.bar(x, psnr, color="C0", label="ours")
    has_ci = {"psnr_ci_low", "psnr_ci_high"} <= set(df.columns)
    drawn = 0
    if has_ci:
        low = pd.to_numeric(df["psnr_ci_low"], errors="coerce").to_numpy(dtype=float)
        high = pd.to_numeric(df["psnr_ci_high"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(low) & np.isfinite(high) & np.isfinite(psnr)
        if ok.any():
            err = np.vstack([psnr[ok] - low[ok], high[ok] - psnr[ok]])
            ax.errorbar(x[ok], psnr[ok], yerr=err, fmt="none", ecolor="black", capsize=4, label="bootstrap CI")
            drawn = int(ok.sum())
    if "paper_psnr" in df.columns:
        paper = pd.to_numeric(df["paper_psnr"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(paper)
        if ok.any():
            ax.scatter(x[ok], paper[ok], marker="D", color="C3", zorder=3, label="paper (RealMCVSR)")
    blur = df.loc[df["method"] == config.BLUR_METHOD, "psnr"] if "method" in df.columns else pd.Series(dtype=float)
    blur = pd.to_numeric(blur, errors="coerce").dropna()
    if len(blur):
        ax.axhline(float(blur.iloc[0]), color="C1", linestyle="--", label=f"Blur frame {float(blur.iloc[0]):.2f} dB (line to beat)")
    for xi, value in zip(x, psnr):
        if np.isfinite(value):
            ax.annotate(f"{value:.2f}", (xi, value), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(x, df["label"], rotation=30, ha="right")
    ax.set_ylabel("PSNR (dB)")
    finite = [v for v in psnr if np.isfinite(v)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 3), None)
    note = "" if drawn else "\n(the table has no confidence intervals)"
    ax.set_title(f"PSNR per method on the test split{note}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, out)


def psnr_time_scatter(table_csv: str | Path, out: str | Path) -> Path:
    """PSNR against ms per frame: our measurements and, where the paper has them, the paper's (1080 Ti)."""
    df = read_table(table_csv)
    fig = _figure(6.0, 4.2)
    ax = fig.subplots()
    plotted = 0
    for key, label, marker, color in (("", "ours", "o", "C0"), ("paper_", "paper (GTX 1080 Ti)", "D", "C3")):
        t_col, p_col = f"{key}time_ms", f"{key}psnr"
        if t_col not in df.columns or p_col not in df.columns:
            continue
        t = pd.to_numeric(df[t_col], errors="coerce")
        p = pd.to_numeric(df[p_col], errors="coerce")
        ok = t.notna() & p.notna() & (t > 0)
        if not ok.any():
            continue
        ax.scatter(t[ok], p[ok], marker=marker, color=color, label=label)
        for name, ti, pi in zip(df["label"][ok], t[ok], p[ok]):
            ax.annotate(name, (ti, pi), textcoords="offset points", xytext=(4, 3), fontsize=8)
        plotted += int(ok.sum())
    untimed = [name for name, t in zip(df["label"], pd.to_numeric(df.get("time_ms"), errors="coerce")) if not _finite(t)]
    if plotted:
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no method has a measured time", ha="center", va="center", transform=ax.transAxes)
    size = df["time_size"].dropna().iloc[0] if "time_size" in df.columns and df["time_size"].notna().any() else None
    where = df["time_device"].dropna().iloc[0] if "time_device" in df.columns and df["time_device"].notna().any() else None
    unit = f"ms per {int(size)}x{int(size)} frame" if _finite(size) else "ms per frame"
    ax.set_xlabel(f"{unit} (ours on {where})" if where else unit)
    ax.set_ylabel("PSNR (dB)")
    title = "PSNR versus run time"
    if untimed:
        title += f"\nnot timed (no parameters): {', '.join(untimed)}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, out)


# --- loss curves ---------------------------------------------------------------------------------------


def loss_curves(logs: dict[str, Path], out: str | Path) -> Path:
    """Training loss and validation PSNR per run (asled.plots draws them)."""
    from asled.plots import plot_loss_curves

    return plot_loss_curves({label: Path(p) for label, p in logs.items()}, Path(out))


# --- optical flow --------------------------------------------------------------------------------------


def flow_to_rgb(flow: np.ndarray, max_magnitude: float | None = None) -> tuple[np.ndarray, float]:
    """HSV colour coding: hue = direction, brightness = magnitude / max_magnitude (the frame's max by default)."""
    magnitude, angle = cv2.cartToPolar(flow[..., 0].astype(np.float32), flow[..., 1].astype(np.float32))
    top = float(max_magnitude if max_magnitude is not None else magnitude.max())
    hsv = np.zeros((*flow.shape[:2], 3), dtype=np.uint8)
    hsv[..., 0] = (angle * 90 / np.pi).astype(np.uint8)  # OpenCV hue spans 0..179 for 0..2pi
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / top * 255, 0, 255).astype(np.uint8) if top > 0 else 0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), top


def dis_flow(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Dense optical flow from `first` to `second` (RGB uint8) with OpenCV's DIS, medium preset."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY)
    b = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY)
    return dis.calc(a, b, None)


def flow_figure(split_dir: str | Path, out: str | Path, *, clips: int = 2, stream: str = "gt") -> Path:
    """Per test clip: two consecutive frames (middle of the clip) and the DIS flow between them."""
    split_dir = Path(split_dir)
    names = list_clips(split_dir / stream)[:clips]
    if not names:
        raise DataError(f"{split_dir / stream}: no test clips to show")
    fig = _figure(9.0, 2.6 * len(names))
    axes = np.atleast_2d(fig.subplots(len(names), 3, squeeze=False))
    for row, clip in enumerate(names):
        frames = list_frames(split_dir / stream / clip)
        if len(frames) < 2:
            raise DataError(f"{split_dir / stream / clip}: a flow needs two consecutive frames, found {len(frames)}")
        i = (len(frames) - 1) // 2
        first, second = read_png(frames[i]), read_png(frames[i + 1])
        rgb, top = flow_to_rgb(dis_flow(first, second))
        panels = [(first, f"clip {clip}: frame {frames[i].stem}"), (second, f"frame {frames[i + 1].stem}"),
                  (rgb, f"DIS flow (hue: direction,\nbrightness: magnitude, max {top:.1f} px)")]
        for col, (image, title) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image)
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Motion between consecutive test frames ({stream} stream)", fontsize=10)
    return _save(fig, out)


# --- compact tables for the report ---------------------------------------------------------------------


def _cell(value, digits: int) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}" if _finite(value) else "-"


def report_table(table_csv: str | Path, out: str | Path) -> Path:
    """A narrow copy of a compiled table (label, ours vs paper, CI where present) for the HTML report.

    The full csv keeps every column (p-values, notes); the report shows what fits on a page.
    """
    df = read_table(table_csv)
    rows = []
    for r in df.to_dict("records"):
        psnr = _cell(r.get("psnr"), 2)
        if _finite(r.get("psnr_ci_low")) and _finite(r.get("psnr_ci_high")):
            psnr += f" [{r['psnr_ci_low']:.2f}, {r['psnr_ci_high']:.2f}]"
        row = {"Method": r["label"], "PSNR (dB) [CI]": psnr, "SSIM": _cell(r.get("ssim"), 4)}
        if "lpips" in r:
            row["LPIPS"] = _cell(r.get("lpips"), 4)
        row["Params (M)"] = _cell(r.get("params_m"), 2)
        if "gflops" in r:
            row["GFLOP"] = _cell(r.get("gflops"), 1)
        if "time_ms" in r:
            row["Time (ms)"] = _cell(r.get("time_ms"), 1)
        row["Paper PSNR"] = _cell(r.get("paper_psnr"), 2)
        row["Paper SSIM"] = _cell(r.get("paper_ssim"), 4)
        rows.append(row)
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return Path(out)


# Titles of the report's landing-page gallery, in display order.
GALLERY = {
    "qualitative": "Qualitative crops: blurry, reference, each method, ground truth",
    "psnr-bar": "PSNR per method with confidence intervals",
    "psnr-time": "PSNR versus time per frame",
    "loss": "Training loss curves",
    "flow": "Optical flow between consecutive test frames",
}


def gallery_html(images: dict[str, str | Path], out: str | Path) -> Path:
    """An HTML fragment showing each PNG inline (base64 data URI) under its title.

    The report's landing page includes it, so the figures are visible without opening each result;
    inline data keeps the single report file self-contained.
    """
    import base64
    import html

    parts = ['<div class="asled-gallery">']
    for title, path in images.items():
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: figure is missing; draw it first (snakemake {path})")
        read_png(path)  # a truncated or non-RGB PNG fails here, not as a broken image in the browser
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}" '
                     f'style="width:100%"><figcaption>{html.escape(title)}</figcaption></figure>')
    parts.append("</div>")
    text = "\n".join(parts) + "\n"
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return Path(out)


def restored_dirs(paths: config.Paths, methods: list[str], seed: int) -> dict[str, Path]:
    """Method label -> restored test folder of `seed`."""
    from asled.models.registry import entry

    return {entry(m).get("label", m): paths.restored(m, seed) for m in methods}


def train_logs(paths: config.Paths, methods: list[str], seeds: list[int]) -> dict[str, Path]:
    """Legend label -> training CSV of every method and seed (untrained methods show as such in the plot)."""
    from asled.models.registry import entry

    logs = {}
    for method in methods:
        for seed in seeds:
            path = paths.train_log(method, seed)
            label = entry(method).get("label", method) + (f" seed {seed}" if len(seeds) > 1 else "")
            logs[label] = path
    return logs


__all__ = [
    "GALLERY",
    "dis_flow",
    "flow_figure",
    "flow_to_rgb",
    "gallery_html",
    "loss_curves",
    "psnr_bar_chart",
    "psnr_time_scatter",
    "qualitative_panel",
    "report_table",
    "restored_dirs",
    "train_logs",
    "worst_blur_window",
]
