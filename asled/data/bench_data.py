"""Data-path benchmarks at RealMCVSR's frame size (1920x1080), run in one process.

`bench_loader`: training samples per second (T consecutive frames, one crop x crop window, blur + ref +
gt, flips and rotations, float tensors) of `TrainClips` reading PNGs (`store=False`: decode every frame
the sample touches) and of `TrainClips` reading the prepared store (memory-mapped arrays), on the same
prepared split, with the same seed, so both draw the same samples; the tensors are compared.

`bench_blur`: frames per second of the prepare step (blur synthesis + reference + PNG and store writes,
`asled.data.prepare.prepare_split`) beside the floor of only reading the same input PNGs and writing
the same output PNGs (the images the synthesis produced, held in memory) with the same codec calls.

Both build synthetic but realistic data in a temporary folder: a camera pans (3 px per frame, with a
slight zoom drift) across a scikit-image photograph upsampled to cover the field, with Gaussian sensor
noise (sigma 2), so the PNGs compress like camera frames (about 3 MB per 1080p frame) rather than like
flat or random images. UW sees twice the field, shrunk to the same size. Files are read right after
being written, so both sides read from the OS page cache: the comparison is decode cost against copy
cost, not disk speed.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from asled.data.blur import average_frames, windows
from asled.data.reference import prepare_reference
from asled.data.store import STREAMS, ClipWriter
from asled.errors import ConfigError
from asled.io import frame_name, read_png, write_png

WIDTH, HEIGHT = 1920, 1080


def _photo_field(width: int, height: int, seed: int) -> np.ndarray:
    """A photograph resized to cover a `2*width x 2*height` field plus room to pan."""
    from skimage import data

    photos = (data.astronaut, data.coffee, data.chelsea, data.rocket)
    photo = photos[seed % len(photos)]()
    return cv2.resize(photo, (2 * width + 256, 2 * height + 256), interpolation=cv2.INTER_CUBIC)


def synthetic_frames(width: int, height: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` sharp W frames and the matching UW frames (uint8 `[count, H, W, 3]` each) of one panning clip."""
    field = _photo_field(width, height, seed)
    rng = np.random.default_rng(seed)
    w_frames, uw_frames = [], []
    for k in range(count):
        x, y = 64 + 3 * k, 64 + k
        wide = field[y : y + 2 * height, x : x + 2 * width]
        sharp = wide[height // 2 : height // 2 + height, width // 2 : width // 2 + width]
        uw = cv2.resize(wide, (width, height), interpolation=cv2.INTER_AREA)
        for frames, image in ((w_frames, sharp), (uw_frames, uw)):
            noisy = image.astype(np.int16) + np.rint(rng.normal(0.0, 2.0, image.shape)).astype(np.int16)
            frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(w_frames), np.stack(uw_frames)


def write_raw(root: Path, split: str, clips: int, frames: int, width: int, height: int, seed: int) -> None:
    """A RealMCVSR-layout split (`<root>/<split>/HR/{UW,W}/<clip>/<frame>.png`) of synthetic clips."""
    for c in range(clips):
        w_frames, uw_frames = synthetic_frames(width, height, frames, seed + c)
        for camera, stack in (("W", w_frames), ("UW", uw_frames)):
            for k, image in enumerate(stack):
                write_png(root / split / "HR" / camera / f"{c:04d}" / frame_name(k), image)


def write_prepared(split_dir: Path, clips: int, frames: int, width: int, height: int, seed: int,
                   window: int = 7) -> None:
    """A prepared split with both PNG streams and the store, built as the prepare step builds them."""
    for c in range(clips):
        w_frames, uw_frames = synthetic_frames(width, height, frames + window - 1, seed + c)
        store = ClipWriter(split_dir, f"{c:04d}", frames)
        for k, (start, centre) in enumerate(windows(len(w_frames), window, 1)):
            images = {
                "blur": average_frames(w_frames[start : start + window]),
                "gt": w_frames[centre],
                "ref": prepare_reference(uw_frames[centre], (width, height)),
            }
            store.write(k, images)
            for stream, image in images.items():
                write_png(split_dir / stream / f"{c:04d}" / frame_name(k), image)
        store.close()


def _rate(dataset, indices: list[int]) -> tuple[float, float, list]:
    dataset[indices[0]]  # open files / memory maps before timing
    start = time.perf_counter()
    samples = [dataset[i] for i in indices]
    seconds = time.perf_counter() - start
    return len(indices) / seconds, seconds, samples


def _check_loader_settings(width: int, height: int, clips: int, frames: int, sample_frames: int, crop: int,
                           png_samples: int, store_samples: int) -> None:
    if min(clips, frames, sample_frames, crop, png_samples, store_samples) < 1 or frames < sample_frames:
        raise ConfigError(
            f"bench loader settings must be positive with frames >= sample_frames (clips {clips}, frames {frames}, "
            f"sample_frames {sample_frames}, crop {crop}, samples {png_samples}/{store_samples})"
        )
    if crop > min(width, height):
        raise ConfigError(f"crop {crop} does not fit in {width}x{height} frames")


def _time_loaders(split: Path, sample_frames: int, crop: int, png_samples: int, store_samples: int,
                  seed: int) -> dict:
    """Samples/s of `TrainClips` decoding PNGs and reading the store on `split` (same seed, so the same
    samples), their ratio, and whether the tensors of the samples both drew are equal."""
    import torch

    from asled.data.dataset import TrainClips

    length = max(png_samples, store_samples) + 1
    png = TrainClips(split, frames=sample_frames, crop=crop, length=length, seed=seed, store=False, cache=False)
    store = TrainClips(split, frames=sample_frames, crop=crop, length=length, seed=seed, store=True)
    png_rate, png_s, png_items = _rate(png, list(range(1, png_samples + 1)))
    store_rate, store_s, store_items = _rate(store, list(range(1, store_samples + 1)))
    identical = all(
        torch.equal(a[s], b[s]) for a, b in zip(png_items, store_items[:png_samples]) for s in STREAMS
    )
    return {
        "png": {"samples": png_samples, "seconds": round(png_s, 4), "samples_per_s": round(png_rate, 3),
                "reads": "cv2.imdecode of every frame a sample touches (TrainClips(store=False, cache=False))"},
        "store": {"samples": store_samples, "seconds": round(store_s, 4), "samples_per_s": round(store_rate, 3),
                  "reads": "np.load(mmap_mode='r') slices (TrainClips(store=True))"},
        "ratio_store_over_png": round(store_rate / png_rate, 2),
        "samples_identical": identical,
    }


def bench_loader(
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    clips: int = 2,
    frames: int = 8,
    sample_frames: int = 7,
    crop: int = 128,
    png_samples: int = 4,
    store_samples: int = 200,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> dict:
    """Samples per second of the PNG-decoding loader and of the prepared store on the same split."""
    _check_loader_settings(width, height, clips, frames, sample_frames, crop, png_samples, store_samples)
    with tempfile.TemporaryDirectory(prefix="asled-bench-loader-", dir=workdir) as tmp:
        split = Path(tmp) / "train"
        start = time.perf_counter()
        write_prepared(split, clips, frames, width, height, seed)
        build_s = time.perf_counter() - start
        png_bytes = sum(p.stat().st_size for s in STREAMS for p in (split / s).rglob("*.png"))
        store_bytes = sum(p.stat().st_size for p in (split / "store").rglob("*.npy"))
        timed = _time_loaders(split, sample_frames, crop, png_samples, store_samples, seed)
    return {
        "benchmark": "training_loader",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "data": {
            "frame_size": [width, height],
            "clips": clips,
            "prepared_frames_per_clip": frames,
            "png_bytes": png_bytes,
            "store_bytes": store_bytes,
            "build_seconds": round(build_s, 2),
            "content": "panning photograph + Gaussian noise (sigma 2), blur = mean of 7 frames",
        },
        "sample": {"frames": sample_frames, "crop": crop, "streams": list(STREAMS),
                   "augmentation": "flip + rot90, float32 tensors"},
        **timed,
        "cache": "files read right after being written (OS page cache warm for both)",
        "processes": 1,
    }


def _floor_run(raw: Path, split: str, out: Path, outputs: dict[str, dict[str, np.ndarray]], window: int,
               stride: int) -> int:
    """Read every PNG the synthesis reads and write every PNG it writes, computing nothing; returns frames."""
    count = 0
    for clip, streams in outputs.items():
        names = sorted(p.name for p in (raw / split / "HR" / "W" / clip).iterdir())
        for index, (start, centre) in enumerate(windows(len(names), window, stride)):
            for i in range(start, start + window):
                read_png(raw / split / "HR" / "W" / clip / names[i])
            read_png(raw / split / "HR" / "UW" / clip / names[centre])
            for stream in STREAMS:
                write_png(out / stream / clip / frame_name(index), streams[stream][index])
            count += 1
    return count


def _time_blur(raw: Path, tmp: Path, repeats: int, workers: int, window: int, stride: int
               ) -> tuple[dict[str, list[float]], int]:
    """Seconds of each repeat of synthesis (with and without PNG streams) and of the floor, and the frames
    each produces; a first untimed synthesis warms the cache and gives the floor the images to write."""
    from asled.data.prepare import prepare_split
    from asled.data.store import open_clip

    runs: dict[str, list[float]] = {"synthesis": [], "synthesis_store_only": [], "floor": []}
    manifest = prepare_split(raw, "test", tmp / "warm", pngs=True, workers=workers)
    outputs = {clip: {k: np.array(v) for k, v in open_clip(tmp / "warm", clip).items()}
               for clip in manifest["clips"]}
    produced = manifest["totals"]["frames"]
    for r in range(repeats):
        for name, pngs in (("synthesis", True), ("synthesis_store_only", False)):
            t0 = time.perf_counter()
            prepare_split(raw, "test", tmp / f"{name}{r}", pngs=pngs, workers=workers)
            runs[name].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        floor_frames = _floor_run(raw, "test", tmp / f"floor{r}", outputs, window, stride)
        runs["floor"].append(time.perf_counter() - t0)
        if floor_frames != produced:
            raise RuntimeError(f"floor wrote {floor_frames} frames, synthesis {produced}")
    return runs, produced


def bench_blur(
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
    clips: int = 1,
    frames: int = 14,
    repeats: int = 3,
    workers: int = 1,
    seed: int = 0,
    workdir: str | Path | None = None,
) -> dict:
    """Frames per second of blur synthesis (the prepare step) against the read + write floor."""
    window = stride = 7
    if min(clips, repeats, workers) < 1 or frames < window:
        raise ConfigError(f"bench blur needs clips, repeats, workers >= 1 and frames >= {window}")
    with tempfile.TemporaryDirectory(prefix="asled-bench-blur-", dir=workdir) as tmp:
        raw = Path(tmp) / "raw"
        start = time.perf_counter()
        write_raw(raw, "test", clips, frames, width, height, seed)
        build_s = time.perf_counter() - start
        runs, produced = _time_blur(raw, Path(tmp), repeats, workers, window, stride)
    result: dict = {
        "benchmark": "blur_synthesis",
        "python": platform.python_version(),
        "opencv": cv2.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "data": {"frame_size": [width, height], "clips": clips, "sharp_frames_per_clip": frames,
                 "build_seconds": round(build_s, 2)},
        "settings": {"window": window, "stride": stride, "space": "srgb", "workers": workers, "repeats": repeats},
        "frames": produced,
        "unit": "output frames (one blur + gt + ref triple) per second, from the best of the repeats (the run "
                "least disturbed by other processes; the median is given beside it)",
        "definitions": {
            "synthesis": "prepare_split with PNG streams and store (as for valid/test): read 7 W + 1 UW PNGs, "
                         "average, crop+resize the reference, write 3 PNGs and 3 array rows",
            "synthesis_store_only": "prepare_split without PNG streams (as for train)",
            "floor": "read the same 8 input PNGs and write the same 3 output PNGs per frame, no computation",
        },
    }
    for name, seconds in runs.items():
        result[name] = {
            "seconds": [round(s, 3) for s in seconds],
            "frames_per_s": round(produced / min(seconds), 3),
            "frames_per_s_median": round(produced / statistics.median(seconds), 3),
        }
    result["ratio_synthesis_over_floor"] = round(result["synthesis"]["frames_per_s"] / result["floor"]["frames_per_s"], 3)
    return result
