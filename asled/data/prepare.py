"""Prepare one split: blurry W frames, their sharp ground truth, and the matching UW references.

Output (`out_dir`, built beside itself and renamed into place, so an interrupted run leaves nothing
that looks complete)::

    blur/<clip>/0000.png ...   average of `window` sharp W frames (asled.data.blur)
    gt/<clip>/0000.png ...     the sharp W frame at each window's centre
    ref/<clip>/0000.png ...    the UW frame at that same instant, centre-cropped and resized to W's size
    manifest.json              per clip: frame count, source centre frame names; the settings used

Frames are numbered consecutively per clip, so `blur`, `gt` and `ref` share names.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asled.data.blur import SPACES, average_frames, windows
from asled.data.layout import split_clips, validate_raw
from asled.data.reference import INTERPOLATIONS, prepare_reference
from asled.errors import ConfigError, DataError
from asled.io import atomic_dir, frame_name, list_frames, read_png, write_png


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
) -> dict:
    """Write the prepared `split` of the raw RealMCVSR-layout data at `raw_root` to `out_dir`; return its manifest."""
    raw_root, out_dir = Path(raw_root), Path(out_dir)
    settings = {
        "window": window,
        "stride": stride,
        "space": space,
        "fov_fraction": fov_fraction,
        "interpolation": interpolation,
    }
    _check_settings(settings)
    # Headers only: every frame used is decoded below anyway (read_png fails on a bad one, and the
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
    manifest: dict = {"split": split, "raw_root": str(raw_root), "settings": settings, "clips": {}}
    with atomic_dir(out_dir) as tmp:
        progress = tqdm(clips.items(), desc=f"prepare {split}", unit="clip", file=sys.stderr, disable=not sys.stderr.isatty())
        for clip, names in progress:
            manifest["clips"][clip] = _prepare_clip(hr, clip, names, tmp, settings)
        manifest["totals"] = {
            "clips": len(clips),
            "frames": sum(entry["frames"] for entry in manifest["clips"].values()),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


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


def _prepare_clip(hr: Path, clip: str, names: list[str], out: Path, settings: dict) -> dict:
    """Blur, ground truth and reference frames of one clip; returns its manifest entry."""
    window, space = settings["window"], settings["space"]
    spans = windows(len(names), window, settings["stride"])
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
        write_png(out / "blur" / clip / frame_name(index), average_frames(sharp, space))
        write_png(out / "gt" / clip / frame_name(index), gt)
        write_png(out / "ref" / clip / frame_name(index), ref)
        centres.append(names[centre])
    return {"frames": len(spans), "centre_frames": centres, "source_frames": len(names)}
