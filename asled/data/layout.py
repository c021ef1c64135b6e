"""Checks that a raw data folder has the RealMCVSR layout before any step reads it.

Layout: `<root>/<split>/HR/<camera>/<clip>/<frame>.png` with four-digit clip and frame names, the
same clips under every camera, the same frame names in every camera's copy of a clip, 8-bit RGB PNG
frames, and one frame size per camera. Every problem is a `DataError` naming the exact path and
the fix, so a half-extracted download is caught here rather than deep inside training.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from asled.errors import DataError
from asled.io import atomic_path, list_clips, list_frames, read_png, require_same_names

CLIP_NAME = re.compile(r"^\d{4}$")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
COLOR_TYPES = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}
FIX_LAYOUT = "expected <root>/<split>/HR/<camera>/<clip>/<frame>.png as in RealMCVSR"


def validate_raw(
    root: Path,
    splits: tuple[str, ...] = ("train", "valid", "test"),
    cameras: tuple[str, ...] = ("UW", "W"),
    *,
    check_pixels: bool = True,
) -> dict:
    """Validate the RealMCVSR layout under `root`; return the counted clips and frames per split.

    With `check_pixels=False` only each PNG's header and end marker are read, which is enough to
    catch wrong formats and most truncations on full-size RealMCVSR without decoding 40 GB.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: raw data folder is missing; generate the demo (`asled data get` with `dataset: demo`) or place RealMCVSR there")
    sizes: dict[str, tuple[tuple[int, int], Path]] = {}
    summary: dict = {
        "root": str(root),
        "cameras": list(cameras),
        "check": "every frame decoded" if check_pixels else "PNG headers and end markers",
        "splits": {},
        "clip_frames": {},
    }
    for split in splits:
        clips = split_clips(root, split, cameras)
        frames = 0
        summary["clip_frames"][split] = {}
        for clip in clips:
            names = _clip_frame_names(root / split / "HR", clip, cameras)
            for camera in cameras:
                for name in names:
                    path = root / split / "HR" / camera / clip / name
                    _check_size(path, _frame_size(path, check_pixels), camera, sizes)
            frames += len(names)
            summary["clip_frames"][split][clip] = len(names)
        summary["splits"][split] = {"clips": len(clips), "frames": frames}
    summary["frame_size"] = {camera: list(size) for camera, (size, _) in sizes.items()}
    return summary


def split_clips(root: Path, split: str, cameras: tuple[str, ...] = ("UW", "W")) -> list[str]:
    """Clip names of a split, checked to be four digits and identical under every camera."""
    hr = Path(root) / split / "HR"
    per_camera = {}
    for camera in cameras:
        folder = hr / camera
        if not folder.is_dir():
            raise DataError(f"{folder}: camera folder is missing; {FIX_LAYOUT} (re-extract the {split} split)")
        per_camera[camera] = list_clips(folder)
        bad = [name for name in per_camera[camera] if not CLIP_NAME.match(name)]
        if bad:
            raise DataError(f"{folder / bad[0]}: clip folder names must be four digits (0000 ...); rename or remove it")
    every = require_same_names(
        {hr / camera: clips for camera, clips in per_camera.items()},
        "clip",
        "restore it or remove the clip from every camera",
    )
    if not every:
        raise DataError(f"{hr}: split {split!r} has no clips; {FIX_LAYOUT}")
    return every


def _clip_frame_names(hr: Path, clip: str, cameras: tuple[str, ...]) -> list[str]:
    """Frame names of a clip, identical under every camera (else a `DataError` naming the gap)."""
    return require_same_names(
        {hr / camera / clip: [p.name for p in list_frames(hr / camera / clip)] for camera in cameras},
        "frame",
        "restore it so the cameras stay synchronised",
    )


def _frame_size(path: Path, check_pixels: bool) -> tuple[int, int]:
    """(width, height) of an 8-bit RGB PNG, from its header and, if asked, from decoding it."""
    width, height = read_png_header(path)
    if check_pixels:
        image = read_png(path)
        if image.shape[:2] != (height, width):
            raise DataError(f"{path}: decoded size disagrees with the PNG header; the file is corrupt, re-extract it")
    return width, height


def read_png_header(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, after checking it is 8-bit RGB and ends with IEND."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(33)
            handle.seek(0, 2)
            end = handle.tell()
            handle.seek(max(0, end - len(PNG_IEND)))
            tail = handle.read()
    except OSError as error:
        raise DataError(f"{path}: frame cannot be read ({error.strerror}); check the file and its permissions") from error
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise DataError(f"{path}: not a PNG file (bad signature or header); re-extract or re-generate it")
    width, height, depth, color = struct.unpack(">IIBB", head[16:26])
    if color != 2 or depth != 8:
        kind = COLOR_TYPES.get(color, f"colour type {color}")
        raise DataError(f"{path}: {depth}-bit {kind} PNG, expected 8-bit RGB; convert it to 8-bit RGB")
    if tail != PNG_IEND:
        raise DataError(f"{path}: PNG is truncated (no IEND end marker); re-extract or re-generate it")
    return width, height


def _check_size(
    path: Path, size: tuple[int, int], camera: str, sizes: dict[str, tuple[tuple[int, int], Path]]
) -> None:
    """Every frame of a camera must share the first frame's size."""
    expected, first = sizes.setdefault(camera, (size, path))
    if size != expected:
        raise DataError(
            f"{path}: frame is {size[0]}x{size[1]} but camera {camera} frames are {expected[0]}x{expected[1]} "
            f"(first seen at {first}); resize or re-extract it"
        )


def summary_markdown(summary: dict, dataset: str) -> str:
    """The counts of `validate_raw` as a short Markdown report."""
    lines = [
        f"# Data summary: `{dataset}`",
        "",
        (
            f"Counted by `asled data validate` in `{summary['root']}` ({summary['check']} checked; cameras "
            f"{', '.join(summary['cameras'])} share clip and frame names, so frame counts are per camera)."
        ),
        "",
        "| split | clips | frames per camera | frames per clip (min / max) |",
        "|---|---:|---:|---|",
    ]
    for split, counts in summary["splits"].items():
        per_clip = list(summary["clip_frames"][split].values())
        lines.append(f"| {split} | {counts['clips']} | {counts['frames']} | {min(per_clip)} / {max(per_clip)} |")
    sizes = ", ".join(f"{camera} {w}x{h}" for camera, (w, h) in summary["frame_size"].items())
    lines += ["", f"Frame size: {sizes}.", ""]
    return "\n".join(lines)


def write_summary(summary: dict, out_prefix: str | Path, dataset: str) -> tuple[Path, Path]:
    """Write `<out_prefix>.json` and `<out_prefix>.md` (each atomically) from a `validate_raw` result."""
    out_prefix = Path(out_prefix)
    json_path, md_path = out_prefix.with_suffix(".json"), out_prefix.with_suffix(".md")
    text = json.dumps({"dataset": dataset, **summary}, indent=2) + "\n"
    markdown = summary_markdown(summary, dataset)
    # both renamed only after both are written
    with atomic_path(json_path) as json_tmp, atomic_path(md_path) as md_tmp:
        json_tmp.write_text(text)
        md_tmp.write_text(markdown)
    return json_path, md_path
