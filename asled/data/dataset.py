"""Datasets over a prepared split: the store (`store/<clip>/{blur,gt,ref}.npy`) and/or PNG streams
(`<split_dir>/{blur,gt,ref}/<clip>/<0000.png ...>`).

The prepare step writes the store for every split and PNGs for valid and test (asled.data.prepare);
readers prefer the store when it is there, and fall back to PNGs (e.g. a split prepared by an older
version, or assembled by hand). Both hold the same clips and frames: row `k` of a clip's array is
frame `000k.png`.

The three streams hold the same clips and frame names; the reference (UW) is already centre-cropped
and upsampled to the blurry (W) frame size by `prepare_split`, so one crop window addresses the same
region in all three (up to the views' own parallax, which the network learns to handle).

`TrainClips` draws every sample from its own random generator seeded with `(seed, index)`, so
`dataset[i]` is a pure function of the seed and `i`: the order of workers, a resumed run, a
different `num_workers`, or reading PNGs instead of the store cannot change what iteration `k` sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from asled.data.store import STREAMS, has_store, open_clip, store_dir, store_index
from asled.errors import DataError
from asled.io import list_clips, list_frames, read_png, require_same_names



@dataclass(frozen=True)
class ClipIndex:
    name: str
    frames: tuple[str, ...]


def index_split(split_dir: str | Path) -> list[ClipIndex]:
    """Clips and frame names of a prepared split (from its store if present, else its PNG streams)."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: prepared split folder is missing; run the prepare step first")
    if has_store(split_dir):
        return [ClipIndex(name, frames) for name, frames, _ in store_index(split_dir)]
    return _index_pngs(split_dir)


def _index_pngs(split_dir: Path) -> list[ClipIndex]:
    """Clips and frame names of a split's PNG streams, checked to agree across the three streams."""
    if not split_dir.is_dir():
        raise DataError(f"{split_dir}: prepared split folder is missing; run the prepare step first")
    for stream in STREAMS:
        if not (split_dir / stream).is_dir():
            raise DataError(
                f"{split_dir / stream}: stream folder is missing (a prepared split has store/, or blur/, ref/ "
                "and gt/); re-run the prepare step"
            )
    fix = "re-run the prepare step"
    clips = require_same_names({split_dir / s: list_clips(split_dir / s) for s in STREAMS}, "clip", fix)
    if not clips:
        raise DataError(f"{split_dir / 'gt'}: no clips; {fix}")
    index = []
    for clip in clips:
        folders = {split_dir / s / clip: [p.name for p in list_frames(split_dir / s / clip)] for s in STREAMS}
        index.append(ClipIndex(clip, tuple(require_same_names(folders, "frame", fix))))
    return index


def _read_checked(path: Path, shape: tuple[int, ...] | None) -> np.ndarray:
    image = read_png(path)
    if shape is not None and image.shape != shape:
        raise DataError(
            f"{path}: frame is {image.shape[1]}x{image.shape[0]}, expected {shape[1]}x{shape[0]} like the "
            "other frames of this clip and streams; re-run the prepare step"
        )
    return image


def load_clip(split_dir: str | Path, clip: str, frames: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    """All frames of one clip: {"blur", "ref", "gt"} -> uint8 `[N, H, W, 3]`, sizes checked."""
    split_dir = Path(split_dir)
    if has_store(split_dir):
        arrays = open_clip(split_dir, clip)
        rows = [int(Path(name).stem) for name in frames]
        if rows and max(rows) >= len(arrays["gt"]):
            raise DataError(
                f"{store_dir(split_dir) / clip}: frame {frames[rows.index(max(rows))]} requested but the clip "
                f"holds {len(arrays['gt'])} frames; re-run the prepare step"
            )
        contiguous = rows == list(range(rows[0], rows[0] + len(rows))) if rows else True
        if contiguous and rows:
            return {s: np.array(arrays[s][rows[0] : rows[-1] + 1]) for s in STREAMS}
        return {s: np.array(arrays[s][rows]) for s in STREAMS}
    out: dict[str, np.ndarray] = {}
    shape = None
    for stream in STREAMS:
        stack = []
        for name in frames:
            image = _read_checked(split_dir / stream / clip / name, shape)
            shape = image.shape
            stack.append(image)
        out[stream] = np.stack(stack)
    return out


def load_split(split_dir: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Load a whole prepared split: clip -> {"blur", "ref", "gt"} uint8 `[N, H, W, 3]`.

    Clip and frame names, and frame sizes, must agree across the three streams; any disagreement
    is a `DataError` naming the offending path.
    """
    return {c.name: load_clip(split_dir, c.name, c.frames) for c in index_split(split_dir)}


def to_tensor(frames_u8: np.ndarray) -> torch.Tensor:
    """uint8 `[N, H, W, 3]` -> float32 `[N, 3, H, W]` in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames_u8.transpose(0, 3, 1, 2))).float().div_(255.0)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of sample `index`: depends on `(seed, index)` only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def augment(frames: np.ndarray, flip: bool, rot90: int) -> np.ndarray:
    """The paper's augmentation on `[T, H, W, C]`: optional horizontal flip, then `rot90` quarter turns."""
    if flip:
        frames = frames[:, :, ::-1]
    if rot90 % 4:
        frames = np.rot90(frames, k=rot90 % 4, axes=(1, 2))
    return frames


def _index_store(split_dir: Path) -> tuple[list[ClipIndex], tuple[int, int]]:
    """The clips of a split's prepared store and their common frame size (height, width)."""
    if not has_store(split_dir):
        raise DataError(f"{store_dir(split_dir)}: prepared store is missing; re-run the prepare step")
    indexed = store_index(split_dir)
    first_size = indexed[0][2]
    for name, _, size in indexed:
        if size != first_size:
            raise DataError(
                f"{store_dir(split_dir) / name}: frames are {size[1]}x{size[0]}, but "
                f"{store_dir(split_dir) / indexed[0][0]} holds {first_size[1]}x{first_size[0]}; "
                "every clip of a split must share one frame size, re-run the prepare step"
            )
    return [ClipIndex(name, frames) for name, frames, _ in indexed], first_size


class TrainClips(Dataset):
    """Random training samples: `frames` consecutive frames, one aligned `crop x crop` window.

    Each item is {"blur", "ref", "gt"} -> float32 `[T, 3, crop, crop]` in [0, 1], with the same
    temporal window, crop, horizontal flip (p = 0.5) and rotation (0/90/180/270 degrees) in all
    three streams. Windows are drawn uniformly over all valid (clip, start frame) pairs. `length`
    is the virtual epoch length (default: the number of such windows).

    `store`: read the prepared store (default: when the split has one). Each item then copies its
    window out of memory-mapped arrays, touching only the bytes it needs, and the OS page cache does
    the caching. `store=False` decodes PNGs instead (the slow path `asled bench loader` compares).

    `cache` (PNG path only): keep decoded clips in memory (default: when the split's frames would take
    under `cache_limit_mb`); otherwise each item decodes its `frames` PNGs per stream.
    """

    def __init__(
        self,
        split_dir: str | Path,
        frames: int = 7,
        crop: int = 64,
        length: int | None = None,
        seed: int = 0,
        *,
        cache: bool | None = None,
        cache_limit_mb: float = 1024.0,
        store: bool | None = None,
    ) -> None:
        self.split_dir = Path(split_dir)
        self.frames = int(frames)
        self.crop = int(crop)
        self.seed = int(seed)
        if self.frames < 1 or self.crop < 1:
            raise DataError(f"frames ({frames}) and crop ({crop}) must be positive")
        if not self.split_dir.is_dir():
            raise DataError(f"{self.split_dir}: prepared split folder is missing; run the prepare step first")
        self.use_store = has_store(self.split_dir) if store is None else bool(store)
        if self.use_store:
            self.clips, (self.height, self.width) = _index_store(self.split_dir)
        else:
            self.clips = _index_pngs(self.split_dir)
        self._check_clip_lengths()
        if not self.use_store:
            first = read_png(self.split_dir / "gt" / self.clips[0].name / self.clips[0].frames[0])
            self.height, self.width = first.shape[:2]
        self._check_crop_fits()
        self.windows_per_clip = np.array([len(c.frames) - self.frames + 1 for c in self.clips], dtype=np.int64)
        self.cum_windows = np.cumsum(self.windows_per_clip)
        self.num_windows = int(self.cum_windows[-1])
        self.length = self.num_windows if length is None else int(length)
        if self.length < 1:
            raise DataError(f"length must be positive, got {length}")
        total_frames = sum(len(c.frames) for c in self.clips)
        estimate_mb = 3 * total_frames * self.height * self.width * 3 / 2**20
        self.cache = False if self.use_store else estimate_mb <= cache_limit_mb if cache is None else bool(cache)
        self._store: dict[str, dict[str, np.ndarray]] = {}
        self._mapped: dict[str, dict[str, np.ndarray]] = {}

    def _check_clip_lengths(self) -> None:
        short = [(c.name, len(c.frames)) for c in self.clips if len(c.frames) < self.frames]
        if short:
            name, n = short[0]
            raise DataError(
                f"{self.split_dir / 'gt' / name}: clip has {n} frames, fewer than the {self.frames} consecutive "
                f"frames a training sample needs ({len(short)} such clip(s)); lower `frames` in params.yaml "
                "or prepare longer clips (more sharp frames per clip)"
            )

    def _check_crop_fits(self) -> None:
        if self.height < self.crop or self.width < self.crop:
            raise DataError(
                f"{self.split_dir / 'gt' / self.clips[0].name / self.clips[0].frames[0]}: frame is "
                f"{self.width}x{self.height}, smaller than the {self.crop}x{self.crop} training crop; "
                "lower `crop` in params.yaml or prepare larger frames"
            )

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:
        # A pickled memmap carries its whole array: worker processes re-open the files instead.
        state = self.__dict__.copy()
        state["_mapped"] = {}
        return state

    def _clip(self, ci: int) -> dict[str, np.ndarray] | None:
        if not self.cache:
            return None
        clip = self.clips[ci]
        if clip.name not in self._store:
            self._store[clip.name] = load_clip(self.split_dir, clip.name, clip.frames)
        return self._store[clip.name]

    def _window(self, ci: int, start: int, top: int, left: int) -> dict[str, np.ndarray]:
        c = self.crop
        clip = self.clips[ci]
        if self.use_store:
            if clip.name not in self._mapped:
                self._mapped[clip.name] = open_clip(self.split_dir, clip.name)
            arrays = self._mapped[clip.name]
            return {s: np.array(arrays[s][start : start + self.frames, top : top + c, left : left + c]) for s in STREAMS}
        cached = self._clip(ci)
        out = {}
        for stream in STREAMS:
            if cached is not None:
                arr = cached[stream][start : start + self.frames, top : top + c, left : left + c]
            else:
                shape = (self.height, self.width, 3)
                arr = np.stack(
                    [
                        _read_checked(self.split_dir / stream / clip.name / name, shape)[top : top + c, left : left + c]
                        for name in clip.frames[start : start + self.frames]
                    ]
                )
            out[stream] = arr
        return out

    def sample_params(self, index: int) -> dict[str, int | bool | str]:
        """Where sample `index` comes from and how it is augmented (pure function of seed and index)."""
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = sample_rng(self.seed, index)
        w = int(rng.integers(self.num_windows))
        ci = int(np.searchsorted(self.cum_windows, w, side="right"))
        start = w - (int(self.cum_windows[ci - 1]) if ci else 0)
        top = int(rng.integers(self.height - self.crop + 1))
        left = int(rng.integers(self.width - self.crop + 1))
        flip = bool(rng.random() < 0.5)
        rot90 = int(rng.integers(4))
        return {"clip_index": ci, "clip": self.clips[ci].name, "start": start, "top": top, "left": left,
                "flip": flip, "rot90": rot90}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        p = self.sample_params(int(index))
        raw = self._window(p["clip_index"], p["start"], p["top"], p["left"])
        return {k: to_tensor(augment(v, p["flip"], p["rot90"])) for k, v in raw.items()}


class TestClips:
    """Whole clips of a prepared split, one at a time.

    Iterating yields `(clip_name, frame_names, {"blur", "ref", "gt"} -> float32 [N, 3, H, W] in [0, 1])`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, split_dir: str | Path) -> None:
        self.split_dir = Path(split_dir)
        self.clips = index_split(self.split_dir)

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def num_frames(self) -> int:
        return sum(len(c.frames) for c in self.clips)

    def __iter__(self) -> Iterator[tuple[str, list[str], dict[str, torch.Tensor]]]:
        for clip in self.clips:
            arrays = load_clip(self.split_dir, clip.name, clip.frames)
            yield clip.name, list(clip.frames), {k: to_tensor(v) for k, v in arrays.items()}
