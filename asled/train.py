"""Train one method on a prepared split (the paper's recipe, scaled by `settings`).

Recipe: Adam(lr), cosine annealing from `lr` to `eta_min` over `iterations` steps, Charbonnier loss
(eps = `charbonnier_eps`), random `frames`-frame clips with aligned `crop x crop` crops, flips and
quarter-turn rotations. Iteration `k` trains on samples `k*B ... k*B+B-1` of `TrainClips(seed)`,
each a pure function of (seed, index), so the data stream does not depend on workers or restarts.

Validation (every `val_every` iterations and at the end): mean PSNR over all frames of the
validation split, the model run on whole clips in non-overlapping chunks of `frames` frames, the
output rounded to 8 bits as at test time. The checkpoint keeps the last weights and the best ones.

A model with no parameters (e.g. `blur`) is not trained: its checkpoint records iteration 0, a
note, and the validation PSNR.

Structure: `Trainer` holds the state (model, optimiser, scheduler, log) and exposes `step`,
`validate`, `save` and `run`, so resuming, DDP or mixed precision can be added around it.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asled.data.dataset import TestClips, TrainClips
from asled.errors import ConfigError
from asled.infer import describe_device, resolve_device, run_clip, tensor_to_u8
from asled.io import atomic_path, write_text
from asled.losses import charbonnier
from asled.metrics.fr import psnr
from asled.models.registry import build_model, count_parameters

SETTINGS_KEYS = ("iterations", "batch_size", "crop", "frames", "lr", "eta_min", "charbonnier_eps", "val_every",
                 "num_workers")
LOG_COLUMNS = ("iteration", "loss", "lr", "val_psnr")
ZERO_PARAM_NOTE = "model has no parameters: nothing to train; the checkpoint records the validation PSNR only"


def check_settings(settings: dict) -> dict:
    missing = [k for k in SETTINGS_KEYS if k not in settings]
    if missing:
        raise ConfigError(f"training settings lack {missing} (see protocols.<name>.train in params.yaml)")
    s = dict(settings)
    for key in ("iterations", "batch_size", "crop", "frames"):
        if int(s[key]) < 1:
            raise ConfigError(f"training setting '{key}' must be a positive integer, got {s[key]}")
    if int(s["num_workers"]) < 0:
        raise ConfigError(f"training setting 'num_workers' must be >= 0, got {s['num_workers']}")
    return s


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


@contextlib.contextmanager
def deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic algorithms on CPU (bit-reproducible runs); the previous global setting is restored."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        if device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        else:
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
        torch.backends.cudnn.benchmark = benchmark


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def validate(model: torch.nn.Module, clips: TestClips, chunk: int, device: torch.device) -> float:
    """Mean PSNR (8-bit RGB) over all frames of `clips`; the model is left in eval mode."""
    model.eval()
    values = []
    for _, _, data in clips:
        restored = tensor_to_u8(run_clip(model, data["blur"], data["ref"], chunk, device))
        gt = tensor_to_u8(data["gt"])
        values.extend(psnr(g, r) for g, r in zip(gt, restored))
    return float(np.mean(values))


def format_log(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in LOG_COLUMNS})
    return buf.getvalue()


class Trainer:
    """One training run: model, optimiser, scheduler, data stream, validation, checkpoint and log."""

    def __init__(
        self,
        method: str,
        train_dir: Path,
        valid_dir: Path,
        out_checkpoint: Path,
        settings: dict,
        *,
        seed: int = 0,
        log_csv: Path | None = None,
        device: str = "auto",
        model_kwargs: dict | None = None,
    ) -> None:
        self.method = method
        self.train_dir, self.valid_dir = Path(train_dir), Path(valid_dir)
        self.out_checkpoint = Path(out_checkpoint)
        self.log_csv = Path(log_csv) if log_csv is not None else None
        self.settings = check_settings(settings)
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.model_kwargs = dict(model_kwargs or {})

        seed_everything(self.seed)
        self.model = build_model(method, **self.model_kwargs).to(self.device)
        self.params = count_parameters(self.model)
        self.trainable = any(p.requires_grad for p in self.model.parameters())
        self.valid = TestClips(self.valid_dir)

        s = self.settings
        self.iteration = 0
        self.log: list[dict[str, Any]] = []
        self.best_val_psnr = -math.inf
        self.best_iteration: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_val_psnr: float | None = None
        if self.trainable:
            self.train_set = TrainClips(
                self.train_dir, frames=int(s["frames"]), crop=int(s["crop"]),
                length=int(s["iterations"]) * int(s["batch_size"]), seed=self.seed,
            )
            self.optimizer = torch.optim.Adam(
                [p for p in self.model.parameters() if p.requires_grad], lr=float(s["lr"])
            )
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=int(s["iterations"]), eta_min=float(s["eta_min"])
            )

    # -- pieces -------------------------------------------------------------------------------
    def loader(self) -> DataLoader:
        """Samples of iterations `self.iteration ... iterations-1`, in order, `batch_size` at a time."""
        b = int(self.settings["batch_size"])
        indices = range(self.iteration * b, int(self.settings["iterations"]) * b)
        workers = int(self.settings["num_workers"])
        return DataLoader(
            self.train_set, batch_size=b, sampler=indices, drop_last=True, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False,
        )

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
        """One optimisation step; returns (loss, learning rate used)."""
        self.model.train()
        blur = batch["blur"].to(self.device, non_blocking=True)
        ref = batch["ref"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        loss = charbonnier(self.model(blur, ref), gt, eps=float(self.settings["charbonnier_eps"]))
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        return float(loss.detach()), float(lr)

    def validate(self) -> float:
        value = validate(self.model, self.valid, int(self.settings["frames"]), self.device)
        self.last_val_psnr = value
        if value > self.best_val_psnr or self.best_state is None:
            self.best_val_psnr, self.best_iteration = value, self.iteration
            self.best_state = cpu_state(self.model)
        return value

    def checkpoint(self) -> dict[str, Any]:
        ckpt = {
            "method": self.method,
            "model_kwargs": self.model_kwargs,
            "state_dict": cpu_state(self.model),
            "best_state_dict": self.best_state,
            "best_val_psnr": None if self.best_state is None else self.best_val_psnr,
            "best_iteration": self.best_iteration,
            "iteration": self.iteration,
            "seed": self.seed,
            "settings": self.settings,
            "params": self.params,
        }
        if not self.trainable:
            ckpt["note"] = ZERO_PARAM_NOTE
        return ckpt

    def save(self) -> None:
        """Checkpoint and log, each written atomically."""
        with atomic_path(self.out_checkpoint) as tmp:
            torch.save(self.checkpoint(), tmp)
        if self.log_csv is not None:
            write_text(self.log_csv, format_log(self.log))

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        last_loss: float | None = None
        with deterministic(self.device):
            if not self.trainable:
                self.log.append({"iteration": 0, "val_psnr": self.validate()})
                self.save()
            else:
                total = int(self.settings["iterations"])
                val_every = int(self.settings["val_every"] or 0)
                with tqdm(total=total, initial=self.iteration, desc=f"train {self.method}", unit="it",
                          dynamic_ncols=True) as bar:
                    for batch in self.loader():
                        last_loss, lr = self.step(batch)
                        if not math.isfinite(last_loss):
                            raise FloatingPointError(f"training loss became {last_loss} at iteration {self.iteration}")
                        row: dict[str, Any] = {"iteration": self.iteration, "loss": last_loss, "lr": lr}
                        if (val_every > 0 and self.iteration % val_every == 0) or self.iteration == total:
                            row["val_psnr"] = self.validate()
                            self.log.append(row)
                            self.save()
                            bar.set_postfix(loss=f"{last_loss:.4f}", val_psnr=f"{row['val_psnr']:.2f}")
                        else:
                            self.log.append(row)
                            bar.set_postfix(loss=f"{last_loss:.4f}")
                        bar.update(1)
        return {
            "method": self.method,
            "seed": self.seed,
            "device": describe_device(self.device),
            "params": self.params,
            "trained": self.trainable,
            "iterations": self.iteration,
            "final_loss": last_loss,
            "best_val_psnr": self.best_val_psnr if self.best_state is not None else None,
            "best_iteration": self.best_iteration,
            "last_val_psnr": self.last_val_psnr,
            "seconds": time.perf_counter() - t0,
            "checkpoint": str(self.out_checkpoint),
            "log_csv": str(self.log_csv) if self.log_csv is not None else None,
            **({} if self.trainable else {"note": ZERO_PARAM_NOTE}),
        }


def train(*args, **kwargs) -> dict:
    """Train a method and write its checkpoint (and loss log); arguments are `Trainer`'s.

    Checkpoint: {"method", "model_kwargs", "state_dict" (last), "best_state_dict", "best_val_psnr",
    "best_iteration", "iteration", "seed", "settings", "params"} (+ "note" for zero-parameter models).
    Log CSV columns: iteration, loss, lr (the rate used by that step), val_psnr (blank when not validated).
    """
    return Trainer(*args, **kwargs).run()
