"""Ways to damage a RealMCVSR-layout `HR` folder, each returning the path the error must name.

Shared by the validator tests and the prepare tests (the same bad inputs must stop both)."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np


def missing_camera(hr: Path) -> Path:
    shutil.rmtree(hr / "UW")
    return hr / "UW"


def missing_frame(hr: Path) -> Path:
    (hr / "UW" / "0001" / "0005.png").unlink()
    return hr / "UW" / "0001" / "0005.png"


def extra_frame(hr: Path) -> Path:
    shutil.copy2(hr / "W" / "0001" / "0013.png", hr / "W" / "0001" / "0014.png")
    return hr / "UW" / "0001" / "0014.png"  # named where it is missing, beside the camera that has it


def frame_size(hr: Path) -> Path:
    path = hr / "W" / "0001" / "0005.png"
    cv2.imwrite(str(path), cv2.imread(str(path))[:32, :32])
    return path


def grayscale(hr: Path) -> Path:
    path = hr / "W" / "0000" / "0002.png"
    cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    return path


def sixteen_bit(hr: Path) -> Path:
    path = hr / "W" / "0000" / "0002.png"
    cv2.imwrite(str(path), cv2.imread(str(path)).astype(np.uint16) * 257)
    return path


def truncated(hr: Path) -> Path:
    path = hr / "UW" / "0000" / "0004.png"
    path.write_bytes(path.read_bytes()[:-40])
    return path


def non_numeric(hr: Path) -> Path:
    (hr / "W" / "0000" / "0006.png").rename(hr / "W" / "0000" / "frame6.png")
    return hr / "W" / "0000"


def empty_clip(hr: Path) -> Path:
    for camera in ("UW", "W"):
        (hr / camera / "0002").mkdir()
    return hr / "UW" / "0002"


DAMAGES = [
    (missing_camera, "camera folder is missing"),
    (missing_frame, "frame is missing"),
    (extra_frame, "frame is missing here"),
    (frame_size, "32x32"),
    (grayscale, "grayscale"),
    (sixteen_bit, "16-bit"),
    (truncated, "truncated"),
    (non_numeric, "four digits"),
    (empty_clip, "empty"),
]
