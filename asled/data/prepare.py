"""Prepare one split: blurry W frames, their sharp ground truth, and the matching UW references.

Output (`out_dir`, built beside itself and renamed into place, so an interrupted run leaves nothing
that looks complete)::

    store/<clip>/{blur,gt,ref}.npy   every split: uint8 [N, H, W, 3] per clip (asled.data.store), what
                                     the training loader memory-maps for cheap random crops
    blur/<clip>/0000.png ...         valid and test (`pngs`): average of `window` sharp W frames
    gt/<clip>/0000.png ...           the sharp W frame at each window's centre
    ref/<clip>/0000.png ...          the UW frame at that same instant, centre-cropped and resized to W's size
    manifest.json                    per clip: frame count, source centre frame names; the settings used

Frames are numbered consecutively per clip, so the streams share names and PNG `k` is array row `k`.
PNG copies are written for the splits that inference and evaluation read frame by frame and people
look at (valid, test); the train split, by far the largest, is only needed as random crops, so it is
stored once, uncompressed. Clips are independent, so `workers > 1` prepares them in parallel
processes, each writing its own clip folders inside the temporary output.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asled.data.blur import SPACES, average_frames, windows
from asled.data.layout import split_clips, validate_raw
from asled.data.reference import INTERPOLATIONS, prepare_reference
from asled.data.store import ClipWriter
from asled.errors import ConfigError, DataError
from asled.io import atomic_dir, frame_name, list_frames, read_png, write_png

# Splits whose frames are also written as PNGs: inference and evaluation read them frame by frame.
PNG_SPLITS = ("valid", "test")


def prepare_split(
    raw_root: Path,
    split: str,
    out_dir: Path,
    *,
    window: int = 7,
    stride: int = 7,
    space: str = "srgb",
    fov_fraction: float = 0.5,
    interpolation: str = "bicubic",
    pngs: bool | None = None,
    workers: int = 1,
) -> dict:
    """Write the prepared `split` of the raw RealMCVSR-layout data at `raw_root` to `out_dir`; return its manifest.

    `pngs`: also write the PNG streams (default: for the valid and test splits). `workers`: clips
    prepared in parallel processes (1: in this process).
    """
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    settings = {
        "window": window,
        "stride": stride,
        "space": space,
        "fov_fraction": fov_fraction,
        "interpolation": interpolation,
    }
    _check_settings(settings)
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    pngs = split in PNG_SPLITS if pngs is None else bool(pngs)
    hr = raw_root / split / "HR"
    clips = _raw_clips(raw_root, split, window)
    manifest: dict = {"split": split, "raw_root": str(raw_root), "settings": settings, "pngs": pngs, "clips": {}}
    with atomic_dir(out_dir) as tmp:
        jobs = [(hr, clip, names, tmp, settings, pngs) for clip, names in clips.items()]
        manifest["clips"] = _prepare_clips(jobs, workers, split)
        manifest["totals"] = {
            "clips": len(clips),
            "frames": sum(entry["frames"] for entry in manifest["clips"].values()),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _raw_clips(raw_root: Path, split: str, window: int) -> dict[str, list[str]]:
    """The W frame names of each clip of the raw `split`, checked to fill at least one blur window."""
    # Headers only: every frame used is decoded later anyway (read_png fails on a bad one, and the
    # atomic output folder then leaves nothing behind), so a full decode here would double the I/O.
    validate_raw(raw_root, splits=(split,), check_pixels=False)
    hr = raw_root / split / "HR"
    clips = {clip: [p.name for p in list_frames(hr / "W" / clip)] for clip in split_clips(raw_root, split)}
    for clip, names in clips.items():
        if len(names) < window:
            raise DataError(
                f"{hr / 'W' / clip}: clip has {len(names)} frames, fewer than the blur window of {window}; "
                "remove the clip or lower blur.window"
            )
    return clips


def _prepare_clips(jobs: list[tuple], workers: int, split: str) -> dict[str, dict]:
    """`_prepare_clip` of every job (in this process, or in `workers` processes); clip -> its manifest entry."""
    entries: dict[str, dict] = {}
    progress = tqdm(total=len(jobs), desc=f"prepare {split}", unit="clip", file=sys.stderr, disable=not sys.stderr.isatty())
    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            entries[job[1]] = _prepare_clip(*job)
            progress.update(1)
    else:
        # spawn: a clean interpreter per worker (no inherited threads or locks from the parent)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(_prepare_clip, *job): job[1] for job in jobs}
            try:
                for future in as_completed(futures):
                    entries[futures[future]] = future.result()
                    progress.update(1)
            except BaseException:
                # the first bad clip ends the step: do not finish the others into a folder about to go
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        entries = dict(sorted(entries.items()))
    progress.close()
    return entries


def _check_settings(settings: dict) -> None:
    """Reject bad settings before any data is read (windows() checks window and stride)."""
    windows(0, settings["window"], settings["stride"])
    if settings["space"] not in SPACES:
        raise ConfigError(f"blur.space must be one of {SPACES}, got {settings['space']!r}")
    if not 0.0 < settings["fov_fraction"] <= 1.0:
        raise ConfigError(f"reference.fov_fraction must be in (0, 1], got {settings['fov_fraction']}")
    if settings["interpolation"] not in INTERPOLATIONS:
        raise ConfigError(
            f"reference.interpolation must be one of {sorted(INTERPOLATIONS)}, got {settings['interpolation']!r}"
        )


def _init_worker() -> None:
    # one OpenCV thread per worker process: the parallelism is across clips
    import cv2

    cv2.setNumThreads(1)


def _prepare_clip(hr: Path, clip: str, names: list[str], out: Path, settings: dict, pngs: bool = True) -> dict:
    """Blur, ground truth and reference frames of one clip; returns its manifest entry."""
    window, space = settings["window"], settings["space"]
    spans = windows(len(names), window, settings["stride"])
    store = ClipWriter(out, clip, len(spans))
    try:
        # Overlapping windows reuse frames: keep only the current window's frames decoded.
        cache: dict[int, np.ndarray] = {}
        centres = []
        for index, (start, centre) in enumerate(spans):
            cache = {i: cache[i] for i in cache if i >= start}
            for i in range(start, start + window):
                if i not in cache:
                    cache[i] = read_png(hr / "W" / clip / names[i])
            sharp = np.stack([cache[i] for i in range(start, start + window)])
            gt = cache[centre]
            ref = prepare_reference(
                read_png(hr / "UW" / clip / names[centre]),
                (gt.shape[1], gt.shape[0]),
                settings["fov_fraction"],
                settings["interpolation"],
            )
            frames = {"blur": average_frames(sharp, space), "gt": gt, "ref": ref}
            store.write(index, frames)
            if pngs:
                for stream, image in frames.items():
                    write_png(out / stream / clip / frame_name(index), image)
            centres.append(names[centre])
    except BaseException:
        store.discard()
        raise
    store.close()
    return {"frames": len(spans), "centre_frames": centres, "source_frames": len(names)}
