"""Real dual-lens captures: ingest, and restore with every trained method.

A capture is a folder `data/real/<capture>/` with the wide (W, blurry) and ultra-wide (UW, reference)
streams, either as two videos `W.<ext>` and `UW.<ext>` (any container OpenCV decodes) or as two frame
folders `W/` and `UW/` (images in name order). An optional `capture.json` gives `uw_offset_ms` (UW
recording start minus W recording start) and, for frame folders, `fps: {"W": .., "UW": ..}`.

Synchronisation is by time, not by frame index: a frame stands for the middle of its frame interval
(video timestamp from CAP_PROP_POS_MSEC, plus half the interval). Each W frame is paired with the
UW frame whose time, shifted by the offset onto W's clock, is nearest; W frames with no UW frame within
half a UW interval (before UW starts or after it stops) are left out and listed in the manifest.
The UW frame then becomes the reference exactly as in training (`asled.data.reference`).

There is no ground truth, so restorations are scored with no-reference metrics only (`asled.metrics.nr`),
per frame, and summarised in `results/tables/<dataset>/table_nr_real.{csv,md,tex,json}`; scoring and the
table live in `asled.real_nr`.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from asled.data.reference import prepare_reference
from asled.errors import ConfigError, DataError
from asled.io import (
    atomic_dir,
    frame_name,
    list_frames,
    read_png,
    write_png,
)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
STREAMS = ("W", "UW")


# ----------------------------------------------------------------------------- settings


def real_settings(params: dict) -> dict:
    """`real:` with defaults; absent means no captures."""
    real = dict(params.get("real") or {})
    real.setdefault("generate", False)
    real.setdefault("captures", [])
    real.setdefault("offsets_ms", {})
    real.setdefault("demo", {})
    return real


# ----------------------------------------------------------------------------- reading a capture


def _read_capture_info(folder: Path) -> dict:
    path = folder / "capture.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); fix or remove it") from exc


def _find_stream(folder: Path, stream: str) -> Path:
    """`W/` (frame folder) or the single `W.<ext>` video of a capture."""
    if (folder / stream).is_dir():
        return folder / stream
    videos = sorted(p for p in folder.glob(f"{stream}.*") if p.is_file())
    if len(videos) == 1:
        return videos[0]
    if not videos:
        raise DataError(
            f"{folder}: no {stream} stream; put a video named {stream}.<ext> (e.g. {stream}.mp4) or a frame folder "
            f"{stream}/ there (see docs/real_captures.md)"
        )
    raise DataError(f"{folder}: several {stream} videos ({', '.join(p.name for p in videos)}); keep exactly one")


def read_stream(path: Path, fps: float | None = None) -> tuple[list[np.ndarray], np.ndarray, float]:
    """(RGB uint8 frames, mid-interval times in ms, frame interval in ms) of a video or a frame folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise DataError(f"{path}: frame folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        if not fps:
            raise DataError(
                f"{path.parent / 'capture.json'}: frame folders carry no timestamps; give "
                '{"fps": {"W": <fps>, "UW": <fps>}} there'
            )
        frames = [_read_image(p) for p in files]
        interval = 1000.0 / float(fps)
        return frames, interval * (np.arange(len(frames)) + 0.5), interval
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DataError(f"{path}: OpenCV cannot open this video; re-encode it (e.g. H.264 .mp4) or extract frames")
    frames, stamps = [], []
    try:
        video_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            # after read(), POS_MSEC is the presentation time of the frame just decoded
            stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC))
            frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        capture.release()
    if not frames:
        raise DataError(f"{path}: OpenCV decoded no frames; the file is empty or truncated")
    stamps = np.asarray(stamps, dtype=np.float64)
    if len(stamps) > 1 and np.all(np.diff(stamps) > 0):
        interval = float(np.median(np.diff(stamps)))
    elif video_fps > 0:
        interval = 1000.0 / video_fps
        stamps = interval * np.arange(len(frames))
    else:
        raise DataError(f"{path}: the video carries neither timestamps nor a frame rate; extract frames and give fps")
    return frames, stamps + interval / 2, interval


def _read_image(path: Path) -> np.ndarray:
    raw = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if raw is None:
        raise DataError(f"{path}: not a readable 8-bit image; re-export it as PNG")
    return np.ascontiguousarray(raw[:, :, ::-1])


def pair_frames(w_times: np.ndarray, uw_times: np.ndarray, uw_interval: float, offset_ms: float) -> list[tuple[int, int, float]]:
    """(W index, UW index, time difference in ms) for every W frame with a UW frame within half a UW interval.

    `offset_ms` is UW's recording start minus W's: a UW frame at time t on its own clock is at
    t + offset_ms on W's clock.
    """
    on_w_clock = np.asarray(uw_times, dtype=np.float64) + float(offset_ms)
    pairs = []
    for wi, t in enumerate(np.asarray(w_times, dtype=np.float64)):
        uj = int(np.argmin(np.abs(on_w_clock - t)))
        diff = float(on_w_clock[uj] - t)
        if abs(diff) <= uw_interval / 2 + 1e-6:
            pairs.append((wi, uj, diff))
    return pairs


def ingest_capture(
    folder: Path,
    out_dir: Path,
    *,
    offset_ms: float | None = None,
    fov_fraction: float = 0.5,
    interpolation: str = "bicubic",
) -> dict:
    """Synchronise one capture and write `out_dir/{blur,ref}/0000.png ...` plus `manifest.json`."""
    folder, out_dir = Path(folder), Path(out_dir)
    if not folder.is_dir():
        raise DataError(f"{folder}: capture folder is missing; place the W and UW videos there or list only existing captures in real.captures")
    info = _read_capture_info(folder)
    fps = info.get("fps") or {}
    offset_source = "argument"
    if offset_ms is None:
        offset_ms, offset_source = (float(info["uw_offset_ms"]), "capture.json") if "uw_offset_ms" in info else (0.0, "default 0")
    sources = {s: _find_stream(folder, s) for s in STREAMS}
    w_frames, w_times, w_interval = read_stream(sources["W"], fps.get("W"))
    uw_frames, uw_times, uw_interval = read_stream(sources["UW"], fps.get("UW"))
    pairs = pair_frames(w_times, uw_times, uw_interval, offset_ms)
    if not pairs:
        raise DataError(
            f"{folder}: no W frame has a UW frame within {uw_interval / 2:.1f} ms after shifting UW by {offset_ms} ms; "
            "check real.offsets_ms (UW start minus W start) or the capture's uw_offset_ms"
        )
    height, width = w_frames[0].shape[:2]
    manifest = {
        "capture": folder.name,
        "sources": {s: str(p) for s, p in sources.items()},
        "offset_ms": offset_ms,
        "offset_source": offset_source,
        "w_interval_ms": w_interval,
        "uw_interval_ms": uw_interval,
        "size": [width, height],
        "reference": {"fov_fraction": fov_fraction, "interpolation": interpolation},
        "pairs": [],
        "dropped_w_frames": sorted(set(range(len(w_frames))) - {p[0] for p in pairs}),
    }
    with atomic_dir(out_dir) as tmp:
        for index, (wi, uj, diff) in enumerate(pairs):
            if w_frames[wi].shape[:2] != (height, width):
                raise DataError(f"{sources['W']}: frame {wi} is {w_frames[wi].shape[1]}x{w_frames[wi].shape[0]}, "
                                f"not {width}x{height} like frame 0")
            ref = prepare_reference(uw_frames[uj], (width, height), fov_fraction, interpolation)
            write_png(tmp / "blur" / frame_name(index), w_frames[wi])
            write_png(tmp / "ref" / frame_name(index), ref)
            manifest["pairs"].append({"frame": frame_name(index), "w_index": wi, "w_time_ms": float(w_times[wi]),
                                      "uw_index": uj, "uw_time_ms": float(uw_times[uj]), "diff_ms": diff})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


# ----------------------------------------------------------------------------- restoring


def load_capture(prepared: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Frame names and uint8 `[N, H, W, 3]` blur and ref stacks of an ingested capture."""
    prepared = Path(prepared)
    if not (prepared / "manifest.json").is_file():
        raise DataError(f"{prepared}: not an ingested capture (no manifest.json); run `asled real ingest` first")
    names = [p.name for p in list_frames(prepared / "blur")]
    ref_names = [p.name for p in list_frames(prepared / "ref")]
    if names != ref_names:
        raise DataError(f"{prepared}: blur/ and ref/ hold different frames; re-run `asled real ingest`")
    blur = np.stack([read_png(prepared / "blur" / n) for n in names])
    ref = np.stack([read_png(prepared / "ref" / n) for n in names])
    return names, blur, ref


def restore_capture(
    method: str,
    checkpoint: Path,
    prepared: Path,
    out_dir: Path,
    *,
    chunk: int | None = None,
    device: str = "auto",
    tile: int | None = None,
    tile_overlap: int = 32,
) -> dict:
    """Restore one ingested capture with a trained method (the same code path as test inference)."""
    from asled.data.dataset import to_tensor
    from asled.infer import Restorer

    restorer = Restorer(method, checkpoint, chunk=chunk, device=device, tile=tile, tile_overlap=tile_overlap)
    names, blur, ref = load_capture(prepared)
    restored = restorer.restore(to_tensor(blur), to_tensor(ref))
    result = {**restorer.facts(), "capture": Path(prepared).name}
    with atomic_dir(out_dir) as tmp:
        for name, image in zip(names, restored):
            write_png(tmp / name, image)
        (tmp / "_info.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def captures_checked(params: dict) -> list[str]:
    captures = real_settings(params)["captures"]
    if not captures:
        raise ConfigError("real.captures lists no capture; add one (a folder under data/real) to params.yaml")
    return captures
