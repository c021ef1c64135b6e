"""The prepared store: each clip's blur, gt and ref frames as one uncompressed uint8 array per stream.

Layout inside a prepared split folder::

    store/<clip>/blur.npy   uint8 [N, H, W, 3], C order, standard .npy header
    store/<clip>/gt.npy
    store/<clip>/ref.npy

Frame `i` of a clip is the PNG frame named `frame_name(i)` (`0000.png` ...) in the split's PNG streams,
where those exist. Training reads the arrays through `np.load(..., mmap_mode="r")`: a random
`T x crop x crop` window copies only the rows it covers (one `crop * 3`-byte run per row and frame),
so a 7x128x128 sample from 1080p clips touches about 2.6 MB of page cache instead of decoding 21
full PNG frames. The arrays are written frame by frame (`ClipWriter`), so building a clip needs one
frame of memory per stream, and the whole split is built in a temporary folder by the prepare step
(asled.data.prepare) and renamed into place, so a store is complete or absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asled.errors import DataError
from asled.io import frame_name

STORE = "store"
STREAMS = ("blur", "ref", "gt")
FIX = "re-run the prepare step (`asled data prepare --split <split>`)"


def store_dir(split_dir: str | Path) -> Path:
    return Path(split_dir) / STORE


def has_store(split_dir: str | Path) -> bool:
    return store_dir(split_dir).is_dir()


def stream_path(split_dir: str | Path, clip: str, stream: str) -> Path:
    return store_dir(split_dir) / clip / f"{stream}.npy"


class ClipWriter:
    """Writes one clip's streams, frame by frame in order, as `.npy` files of known length `frames`.

    Plain sequential writes after a standard header: no memory map on the write side, so nothing but
    the current frame is held and the kernel writes the pages back at its own pace.
    """

    def __init__(self, split_dir: str | Path, clip: str, frames: int) -> None:
        self.split_dir, self.clip, self.frames = Path(split_dir), clip, int(frames)
        self._files: dict[str, object] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._next = 0

    def write(self, index: int, images: dict[str, np.ndarray]) -> None:
        if index != self._next or index >= self.frames:
            raise ValueError(f"frames must be written in order 0..{self.frames - 1}; got {index} after {self._next - 1}")
        for stream, image in images.items():
            image = np.ascontiguousarray(image, dtype=np.uint8)
            if stream not in self._files:
                path = stream_path(self.split_dir, self.clip, stream)
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = open(path, "wb")
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                          "shape": (self.frames, *image.shape)}
                np.lib.format.write_array_header_1_0(handle, header)
                self._files[stream], self._shapes[stream] = handle, image.shape
            if image.shape != self._shapes[stream]:
                raise ValueError(f"{stream} frame {index} is {image.shape}, earlier frames {self._shapes[stream]}")
            self._files[stream].write(memoryview(image).cast("B"))
        self._next += 1

    def close(self) -> None:
        self.discard()
        if self._next != self.frames:
            raise ValueError(f"clip {self.clip}: {self._next} of {self.frames} frames written")

    def discard(self) -> None:
        """Close the files without checks (the step failed; its temporary folder goes away)."""
        for handle in self._files.values():
            handle.close()
        self._files.clear()


def open_stream(split_dir: str | Path, clip: str, stream: str) -> np.ndarray:
    """One stream of a clip, memory-mapped read-only, checked to be uint8 `[N, H, W, 3]`."""
    path = stream_path(split_dir, clip, stream)
    if not path.is_file():
        raise DataError(f"{path}: prepared array is missing; {FIX}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error}); the file is truncated or corrupt, {FIX}") from error
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or not array.flags.c_contiguous:
        raise DataError(f"{path}: expected a C-ordered uint8 [N, H, W, 3] array, found {array.dtype} {array.shape}; {FIX}")
    return array


def open_clip(split_dir: str | Path, clip: str) -> dict[str, np.ndarray]:
    """All streams of a clip, memory-mapped, checked to agree in shape."""
    arrays = {stream: open_stream(split_dir, clip, stream) for stream in STREAMS}
    expected = arrays["gt"].shape
    for stream, array in arrays.items():
        if array.shape != expected:
            raise DataError(
                f"{stream_path(split_dir, clip, stream)}: shape {array.shape} differs from "
                f"{stream_path(split_dir, clip, 'gt')} {expected}; {FIX}"
            )
    if expected[0] == 0:
        raise DataError(f"{stream_path(split_dir, clip, 'gt')}: clip has no frames; {FIX}")
    return arrays


def store_index(split_dir: str | Path) -> list[tuple[str, tuple[str, ...], tuple[int, int]]]:
    """`(clip, frame names, (height, width))` of every clip in a split's store, in name order."""
    root = store_dir(split_dir)
    clips = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not clips:
        raise DataError(f"{root}: prepared store has no clips; {FIX}")
    index = []
    for clip in clips:
        shape = open_clip(split_dir, clip)["gt"].shape
        index.append((clip, tuple(frame_name(i) for i in range(shape[0])), (shape[1], shape[2])))
    return index
