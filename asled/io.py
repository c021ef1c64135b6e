"""Frame I/O and atomic writes shared by every step.

Frames are 8-bit RGB PNGs named with four digits (`0000.png`), as in RealMCVSR. Every write goes
to a temporary sibling first and is renamed into place, so an interrupted step never leaves an
output that looks complete.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from asled.errors import DataError

FRAME_NAME = re.compile(r"^\d{4}\.png$")


def read_png(path: str | Path) -> np.ndarray:
    """Read an 8-bit RGB PNG as a `uint8` array `[H, W, 3]`; anything else is a `DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: frame is missing")
    raw = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(f"{path}: not a readable PNG (truncated or corrupt); re-extract or re-generate it")
    if image.dtype != np.uint8:
        raise DataError(f"{path}: {image.dtype} PNG, expected 8-bit RGB; convert it to 8 bits per channel")
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"{path}: grayscale PNG, expected 8-bit RGB; convert it to RGB")
    if image.shape[2] == 4:
        raise DataError(f"{path}: RGBA PNG, expected 8-bit RGB without alpha; drop the alpha channel")
    return np.ascontiguousarray(image[:, :, ::-1])


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a `uint8` RGB array `[H, W, 3]` as PNG, atomically."""
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"write_png expects uint8 [H, W, 3], got {image.dtype} {image.shape}")
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        encoded.tofile(tmp)


def frame_name(index: int) -> str:
    return f"{index:04d}.png"


def list_frames(clip_dir: str | Path) -> list[Path]:
    """Sorted frame files of a clip folder; non-numeric or empty folders are a `DataError`."""
    clip_dir = Path(clip_dir)
    if not clip_dir.is_dir():
        raise DataError(f"{clip_dir}: clip folder is missing")
    files = sorted(p for p in clip_dir.iterdir() if not p.name.startswith("."))
    bad = [p.name for p in files if not FRAME_NAME.match(p.name)]
    if bad:
        raise DataError(
            f"{clip_dir}: frame names must be four digits + .png (0000.png ...), found {bad[:3]}; rename them"
        )
    if not files:
        raise DataError(f"{clip_dir}: clip folder is empty; remove it or restore its frames")
    return files


def list_clips(split_dir: str | Path) -> list[str]:
    """Sorted clip folder names under a camera or stream folder."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: folder is missing")
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def current_umask() -> int:
    """The process umask, read without changing it where Linux reports it (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def load_tensors(path: str | Path, *, missing: str, unreadable: str):
    """`torch.load(path, weights_only=True)` on the CPU (tensors and plain containers, never pickled code);
    a missing or unreadable file is a DataError naming the path, `missing` / `unreadable` saying the fix."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path}: {unreadable} ({exc})") from exc


def honour_umask(path: str | Path) -> None:
    """Give `path` the mode a plain open() or mkdir() would have (0666 / 0777 less the umask).

    mkstemp and mkdtemp create 0600 / 0700 entries, which the rename into place would keep: outputs on a
    shared filesystem would then be private to their owner, unlike every other file the user creates."""
    path = Path(path)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~current_umask())


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        honour_umask(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        honour_umask(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def csv_text(rows: list[dict], columns: tuple[str, ...]) -> str:
    """`rows` as CSV text under a header of `columns`: a missing or None value is an empty cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    return buf.getvalue()


def require_same_names(names_by_folder: dict[Path, list[str]], what: str, fix: str) -> list[str]:
    """The sorted union of names, after checking every folder holds all of them.

    Cameras of a raw clip, or streams of a prepared clip, must list the same clips/frames; the first
    gap found becomes a `DataError` naming the missing path.
    """
    every = sorted(set().union(*names_by_folder.values()))
    for folder, names in names_by_folder.items():
        missing = sorted(set(every) - set(names))
        if missing:
            raise DataError(
                f"{folder / missing[0]}: {what} is missing here ({len(missing)} missing) but present in "
                f"{', '.join(str(f) for f in names_by_folder if f != folder)}; {fix}"
            )
    return every
