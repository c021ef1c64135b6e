"""The resume file of a training run: where it lives, what identifies it, how it is written and read.

Every `checkpoint_every` iterations (and on a preemption signal) `asled.train.Trainer` writes its whole
state beside the checkpoint (`seed0.pt` -> `seed0.resume.pt`). A later run continues from it only when
its fingerprint (method, model arguments, seed, data, result-relevant settings) equals the new run's;
otherwise the file is ignored and replaced at the first checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asled.errors import DataError
from asled.io import atomic_path

RESUME_FORMAT = "asled-resume-1"
# Keys that do not change what is computed (up to the order of floating-point sums over ranks), so a
# resume file written under other values of them is still valid.
ENGINE_ONLY_KEYS = ("num_workers", "checkpoint_every", "devices", "device", "compile", "retries", "log_every",
                    "pin_memory", "prefetch_factor")


def resume_path(checkpoint: str | Path) -> Path:
    """The resume file of a checkpoint: `seed0.pt` -> `seed0.resume.pt`, in the same folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".resume" + (checkpoint.suffix or ".pt"))


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every generator the run may draw from, in a form `torch.load(weights_only=True)` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def split_digest(split_dir: Path) -> str:
    """Identity of a prepared split for resume checks: its manifest (settings, clips), hashed."""
    manifest = Path(split_dir) / "manifest.json"
    if not manifest.is_file():
        return "no manifest.json"
    return hashlib.sha256(manifest.read_bytes()).hexdigest()


def save_torch(obj: Any, path: Path) -> None:
    """`torch.save` to a temporary sibling, flushed to disk, then renamed onto `path`."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def run_fingerprint(method: str, model_kwargs: dict, seed: int, settings: dict, train_dir: Path,
                    valid_dir: Path) -> str:
    """What a resume file must match: method, weights' arguments, seed, data and result-relevant settings."""
    return json.dumps({
        "method": method,
        "model_kwargs": model_kwargs,
        "seed": seed,
        # tf32 came later: off, it is left out, so resume files written before it stay valid
        "settings": {k: v for k, v in settings.items()
                     if k not in ENGINE_ONLY_KEYS and not (k == "tf32" and not v)},
        "train": split_digest(train_dir),
        "valid": split_digest(valid_dir),
    }, sort_keys=True, default=str)


def write_resume(path: Path, fingerprint: str, reason: str, state: dict[str, Any]) -> None:
    """`state` (the training state) atomically to `path`, under the format tag, fingerprint and reason."""
    save_torch({"format": RESUME_FORMAT, "fingerprint": fingerprint, "reason": reason, **state}, path)


def read_resume(path: Path, fingerprint: str, announce: bool) -> dict[str, Any] | None:
    """The state in `path` when it was written for `fingerprint`; None for another run's file (said on
    stderr when `announce`). A file that cannot be read, or is not a resume file, is a DataError that says
    to delete it."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(
            f"{path}: cannot read the resume checkpoint ({exc}); delete it to start this run from scratch"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise DataError(f"{path}: not an asled resume checkpoint; delete it to start this run from scratch")
    if state["fingerprint"] != fingerprint:
        if announce:
            print(f"asled train: ignoring {path}: written for another method, seed, data or settings; "
                  "starting from scratch (it is replaced at the first checkpoint)", file=sys.stderr)
        return None
    return state
