"""Data steps: demo generation, RealMCVSR download (asled.data.download), layout validation, blur
synthesis, reference preparation, and the prepared store the training loader memory-maps."""

from asled.data.blur import average_frames, windows
from asled.data.demo import generate_demo
from asled.data.layout import split_clips, validate_raw
from asled.data.prepare import prepare_split
from asled.data.reference import prepare_reference

__all__ = [
    "average_frames",
    "generate_demo",
    "prepare_reference",
    "prepare_split",
    "split_clips",
    "validate_raw",
    "windows",
]
