"""Train one method on a prepared split (the paper's recipe, scaled by `settings`).

Recipe: Adam(lr), cosine annealing from `lr` to `eta_min` over `iterations` steps, Charbonnier loss
(eps = `charbonnier_eps`), random `frames`-frame clips with aligned `crop x crop` crops, flips and
quarter-turn rotations. Iteration `k` trains on samples `k*B ... k*B+B-1` of `TrainClips(seed)`,
each a pure function of (seed, index), so the data stream does not depend on workers, restarts or the
number of data-parallel ranks (`asled.distributed`).

Flow (BasicVSR's recipe, asled/flow_recipe.py): the parameters of every `SPyNet` module form their own
Adam group at `lr * flow_lr_mul` (same cosine schedule) and get no update in the first
`flow_freeze_iterations` iterations (`FlowSchedule`); with `spynet: pretrained` SPyNet starts from the
staged mmagic weights, and a missing file stops the run before the model is built.

Validation (before the first step, every `val_every` iterations and at the end): mean PSNR over all frames of the
validation split, the model run on whole clips in non-overlapping chunks of `frames` frames, the
output rounded to 8 bits as at test time. The checkpoint keeps the last weights and the best ones.

Resume: every `checkpoint_every` iterations the whole state (weights, Adam, scheduler, RNG states,
the iteration, which fixes the sampler position, the log so far and the best weights) is written
atomically to the *resume file* beside the checkpoint (`seed0.pt` -> `seed0.resume.pt`;
asled/resume.py). It is not a declared output of the workflow, so a failed job's clean-up keeps it. A
later run with the same method, seed, data and result-relevant settings continues from it
automatically; on CPU the result equals an uninterrupted run's bit for bit. The file is deleted once
the final checkpoint is written.

Preemption: SIGTERM or SIGUSR1 (how SLURM preempts) lets the current step finish, writes the resume
file and raises `Preempted`; `asled train` then exits with `RESUME_EXIT_CODE` (75, EX_TEMPFAIL),
which the workflow treats as "run me again" (Snakemake `retries`, SLURM requeue).

Speed (all off by default; asled/fastpath.py, measured by `asled bench train`): `precision: bf16` (autocast,
fp32 master weights), `channels_last`, `tf32`, `compile` (false / true / regional). The step never waits
for the device: losses stay on it and are read every `log_every` iterations (and before validation, a
checkpoint, the end), when the rows of those iterations are logged and checked for NaN/inf; a preemption
signal is acted on at those points too. The loader pins memory on CUDA (`pin_memory: auto`) and uses
`num_workers` processes with `prefetch_factor` batches each in flight.

Logs: a tqdm progress bar (it/s, ETA, loss), TensorBoard scalars and the CSV log.

A model with no parameters (e.g. `blur`) is not trained: its checkpoint records iteration 0, a
note, and the validation PSNR.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asled import config, distributed
from asled.data.dataset import TestClips, TrainClips
from asled.device import describe_device, resolve_device
from asled.fastpath import autocast, compile_model, memory_format, tf32
from asled.flow_recipe import FLOW_DEFAULTS, check_spynet_weights
from asled.infer import run_clip, tensor_to_u8
from asled.io import csv_text, write_text
from asled.losses import charbonnier
from asled.metrics.pixels import psnr
from asled.models.registry import build_model, count_parameters
from asled.models.spynet import spynet_parameters
from asled.resume import (
    read_resume,
    resume_path,
    rng_state,
    run_fingerprint,
    save_torch,
    set_rng_state,
    write_resume,
)

# Exit code of `asled train` after a preemption signal: the resume file is written, run me again.
# 75 is EX_TEMPFAIL of sysexits.h ("temporary failure, the user is invited to retry").
RESUME_EXIT_CODE = 75
PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

SETTINGS_KEYS = ("iterations", "batch_size", "crop", "frames", "lr", "eta_min", "charbonnier_eps", "val_every",
                 "num_workers", "checkpoint_every", "devices", "device", "precision", "channels_last", "compile",
                 "retries", "tf32", "log_every", "pin_memory", "prefetch_factor", *FLOW_DEFAULTS)
# Keys added after the first recipes: a settings dict without them gets these values (the flow keys'
# defaults, BasicVSR's recipe, live in asled.flow_recipe).
SETTINGS_DEFAULTS = {"checkpoint_every": 1000, "devices": 1, "device": "auto", "precision": "fp32",
                     "channels_last": False, "compile": False, "retries": 0, "tf32": False, "log_every": 1,
                     "pin_memory": "auto", "prefetch_factor": None, **FLOW_DEFAULTS}
LOG_COLUMNS = ("iteration", "loss", "lr", "val_psnr")
ZERO_PARAM_NOTE = "model has no parameters: nothing to train; the checkpoint records the validation PSNR only"


class Preempted(Exception):
    """Training stopped on a preemption signal after writing its resume file (not an error)."""

    def __init__(self, signum: int, iteration: int, resume_file: Path) -> None:
        self.signum, self.iteration, self.resume_file = signum, iteration, Path(resume_file)
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after iteration {iteration}; state saved in {resume_file}; "
            f"run the same command again to resume (exit code {RESUME_EXIT_CODE})"
        )


def check_settings(settings: dict) -> dict:
    """The settings with the defaults of keys added after the first recipes, checked against params.yaml's
    schema (`recipes.<r>.train`: the one home of every key's range, asled.config.check_train_settings)."""
    s = {**SETTINGS_DEFAULTS, **settings}
    config.check_train_settings(s, SETTINGS_KEYS, source="training settings (recipes.<name>.train in params.yaml)")
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


@contextlib.contextmanager
def preemption_signals() -> Iterator[dict[str, int | None]]:
    """While active, SIGTERM / SIGUSR1 only set `state["signal"]`; the loop stops at the next step boundary.

    Handlers can only be installed from the main thread; elsewhere the signals keep their defaults.
    """
    state: dict[str, int | None] = {"signal": None}

    def handler(signum, _frame) -> None:
        if state["signal"] is None:
            state["signal"] = signum

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.signal(s, handler) for s in PREEMPT_SIGNALS}
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _loader_worker_init(_worker_id: int) -> None:
    # A cluster signals every process of the job; loader workers must outlive SIGTERM / SIGUSR1 so
    # that the main process can finish its step and write the resume file (it stops them itself).
    for s in PREEMPT_SIGNALS:
        signal.signal(s, signal.SIG_IGN)


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def validate(model: torch.nn.Module, clips: TestClips, chunk: int, device: torch.device,
             env: distributed.DistEnv | None = None) -> float:
    """Mean PSNR (8-bit RGB) over all frames of `clips`; the model is left in eval mode.

    With several ranks, rank r restores clips r, r+W, ... and the per-frame sums are added over ranks.
    """
    env = env or distributed.DistEnv()
    model.eval()
    values = []
    for i, (_, _, data) in enumerate(clips):
        if i % env.world_size != env.rank:
            continue
        restored = tensor_to_u8(run_clip(model, data["blur"], data["ref"], chunk, device))
        gt = tensor_to_u8(data["gt"])
        values.extend(psnr(g, r) for g, r in zip(gt, restored))
    if not env.enabled:
        return float(np.mean(values))
    total, count = distributed.all_reduce_sum([float(np.sum(values)) if values else 0.0, float(len(values))],
                                              env, device)
    return total / count


class FlowSchedule:
    """BasicVSR's flow schedule: the parameters of every `SPyNet` in the model (`spynet_parameters`) form
    their own Adam group at `lr * flow_lr_mul`, and get no update, hence no Adam state, in iterations
    0 .. `flow_freeze_iterations`-1.

    Frozen by dropping their gradients between backward and the optimiser step (Adam skips a parameter
    without a gradient), not by toggling `requires_grad`: DDP's gradient hooks stay as built and every rank
    skips the same parameters. Whether SPyNet is frozen is a function of the iteration alone, so a resumed
    run continues the schedule exactly."""

    def __init__(self, model: torch.nn.Module, settings: dict) -> None:
        self.params = spynet_parameters(model)
        self.freeze_iterations = int(settings["flow_freeze_iterations"])
        self.lr_mul = float(settings["flow_lr_mul"])

    def param_groups(self, model: torch.nn.Module, lr: float) -> list[dict[str, Any]]:
        """[rest of the model at `lr`, SPyNet at `lr * flow_lr_mul`] (empty groups left out)."""
        flow = {id(p) for p in self.params}
        rest = [p for p in model.parameters() if p.requires_grad and id(p) not in flow]
        groups = [{"params": rest, "lr": lr}, {"params": self.params, "lr": lr * self.lr_mul}]
        return [g for g in groups if g["params"]]

    def frozen(self, iteration: int) -> bool:
        return iteration < self.freeze_iterations

    def before_step(self, iteration: int) -> None:
        """Between backward and `optimizer.step()` of iteration `iteration` (0-based)."""
        if self.frozen(iteration):
            for p in self.params:
                p.grad = None


class BestWeights:
    """What validation found: the last PSNR, and the best one with its iteration and weights (on the CPU).

    The first validation is always kept as the best, so a run that never beats its starting point keeps it."""

    def __init__(self) -> None:
        self.psnr = -math.inf
        self.iteration: int | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.last_psnr: float | None = None

    def update(self, value: float, iteration: int, model: torch.nn.Module) -> None:
        self.last_psnr = value
        if value > self.psnr or self.state is None:
            self.psnr, self.iteration = value, iteration
            self.state = cpu_state(model)

    @property
    def best_psnr(self) -> float | None:
        """The best PSNR, None before the first validation (never -inf in a file or summary)."""
        return None if self.state is None else self.psnr

    def resume_fields(self) -> dict[str, Any]:
        return {"best_state": self.state, "best_val_psnr": self.best_psnr, "best_iteration": self.iteration,
                "last_val_psnr": self.last_psnr}

    def restore(self, state: dict[str, Any]) -> None:
        """From a resume file's state (the fields of `resume_fields`)."""
        self.state = state["best_state"]
        self.iteration = state["best_iteration"]
        self.psnr = -math.inf if state["best_val_psnr"] is None else float(state["best_val_psnr"])
        self.last_psnr = state["last_val_psnr"]


@dataclasses.dataclass(frozen=True)
class Cadence:
    """When, after a step, the loop validates, writes the periodic resume file, and reads the losses."""

    total: int
    val_every: int
    checkpoint_every: int
    log_every: int

    @classmethod
    def from_settings(cls, settings: dict) -> Cadence:
        return cls(int(settings["iterations"]), int(settings["val_every"] or 0), int(settings["checkpoint_every"]),
                   int(settings["log_every"]))

    def due(self, iteration: int) -> tuple[bool, bool, bool]:
        """(validate, periodic resume file, read the pending losses) after step `iteration` (1-based count)."""
        last = iteration == self.total
        validate = (self.val_every > 0 and iteration % self.val_every == 0) or last
        periodic = bool(self.checkpoint_every) and iteration % self.checkpoint_every == 0 and not last
        # every event needs the losses on the host: validation and resume files log them, and a NaN must stop
        # the run before it is saved
        return validate, periodic, validate or periodic or iteration % self.log_every == 0 or last


def read_losses(pending: list[tuple[int, torch.Tensor, float]], stop: dict[str, int | None],
                env: distributed.DistEnv, device: torch.device) -> tuple[list[float], bool]:
    """The pending steps' global-batch losses, read with one host sync (and, with several ranks, one
    collective that also says whether any rank was signalled); returns (losses, stop requested)."""
    local = torch.stack([loss for _, loss, _ in pending]).double().tolist() if pending else []
    sums = distributed.all_reduce_sum([*local, float(stop["signal"] is not None)], env, device)
    losses = [v / env.world_size for v in sums[:-1]] if env.enabled else local
    for (iteration, _, _), loss in zip(pending, losses):
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss} at iteration {iteration}")
    return losses, sums[-1] > 0


def open_tensorboard(folder: Path, resumed_from: int | None):
    """A SummaryWriter on `folder`; a fresh run clears old event files."""
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    if resumed_from is None:
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        return SummaryWriter(str(folder))
    # steps logged after the resume point by the interrupted run are hidden, then logged again
    return SummaryWriter(str(folder), purge_step=resumed_from + 1)


class RunLog:
    """The log rows (the CSV log, kept in the resume file) and their copies: TensorBoard scalars (rank 0,
    `writer` None elsewhere) and the progress bar."""

    def __init__(self, rows: list[dict[str, Any]], writer) -> None:
        self.rows, self.writer = rows, writer

    def validation(self, iteration: int, val_psnr: float) -> None:
        self.rows.append({"iteration": iteration, "val_psnr": val_psnr})
        if self.writer is not None:
            self.writer.add_scalar("valid/psnr", val_psnr, iteration)

    def steps(self, pending: list[tuple[int, torch.Tensor, float]], losses: list[float], seconds: float,
              bar: tqdm, val_psnr: float | None, current: int) -> None:
        """One row per pending step; the row of step `current` carries `val_psnr` when it was validated."""
        for (iteration, _, lr), loss in zip(pending, losses):
            row: dict[str, Any] = {"iteration": iteration, "loss": loss, "lr": lr}
            if val_psnr is not None and iteration == current:
                row["val_psnr"] = val_psnr
            self.rows.append(row)
            if self.writer is not None:
                self.writer.add_scalar("train/loss", loss, iteration)
                self.writer.add_scalar("train/lr", lr, iteration)
                # the interval's mean: without a sync per step, single steps cannot be timed
                self.writer.add_scalar("train/seconds_per_iteration", seconds / len(pending), iteration)
                if "val_psnr" in row:
                    self.writer.add_scalar("valid/psnr", val_psnr, iteration)
        if losses:
            postfix = {"loss": f"{losses[-1]:.4f}"}
            bar.set_postfix(postfix | ({"val_psnr": f"{val_psnr:.2f}"} if val_psnr is not None else {}))
        bar.update(len(pending))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Trainer:
    """One training run: model, optimiser, scheduler and data stream; the step loop, with validation
    (`BestWeights`), logs (`RunLog`), the resume file (asled.resume) and the final checkpoint."""

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
        device: str | None = None,
        model_kwargs: dict | None = None,
        tensorboard_dir: Path | None = None,
        resume: bool = True,
    ) -> None:
        self.method = method
        self.train_dir, self.valid_dir = Path(train_dir), Path(valid_dir)
        self.out_checkpoint = Path(out_checkpoint)
        self.resume_file = resume_path(self.out_checkpoint)
        self.log_csv = Path(log_csv) if log_csv is not None else None
        self.tensorboard_dir = Path(tensorboard_dir) if tensorboard_dir is not None else None
        self.settings = check_settings(settings)
        self.seed = int(seed)
        self.resume = resume
        self.model_kwargs = dict(model_kwargs or {})
        check_spynet_weights(self.model_kwargs, [method])  # a missing pretrained flow stops us before any data
        self.env, self.device = distributed.setup(resolve_device(device or self.settings["device"]))
        self.bf16 = self.settings["precision"] == "bf16"

        seed_everything(self.seed)
        self.model = build_model(method, **self.model_kwargs).to(self.device)
        self.params = count_parameters(self.model)
        self.trainable = any(p.requires_grad for p in self.model.parameters())
        self.valid = TestClips(self.valid_dir)

        self.iteration = 0
        self.resumed_from: int | None = None
        self.log: list[dict[str, Any]] = []
        self.best = BestWeights()
        self.net: torch.nn.Module = self.model
        if self.trainable:
            self._setup_optimisation()

    def _setup_optimisation(self) -> None:
        """Data stream, memory format, optimiser (with the flow group) and schedule of a model with parameters."""
        s = self.settings
        self.local_batch = distributed.check_batch(int(s["batch_size"]), self.env.world_size)
        self.train_set = TrainClips(
            self.train_dir, frames=int(s["frames"]), crop=int(s["crop"]),
            length=int(s["iterations"]) * int(s["batch_size"]), seed=self.seed,
        )
        self.model = memory_format(self.model, bool(s["channels_last"]))
        self.flow = FlowSchedule(self.model, s)
        self.optimizer = torch.optim.Adam(self.flow.param_groups(self.model, float(s["lr"])), lr=float(s["lr"]))
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=int(s["iterations"]), eta_min=float(s["eta_min"])
        )

    # -- pieces -------------------------------------------------------------------------------
    def wrap(self) -> None:
        """Regional compilation (in place, before DDP), DDP around the model (several ranks), then whole-model
        `torch.compile` (optional): `self.net` is what trains."""
        mode = self.settings["compile"]
        net: torch.nn.Module = compile_model(self.model, "regional") if mode == "regional" else self.model
        if self.env.enabled:
            from torch.nn.parallel import DistributedDataParallel

            net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.net = compile_model(net, True) if mode is True else net

    def loader(self) -> DataLoader:
        """This rank's samples of iterations `self.iteration ... iterations-1`, in order, one local batch at a time."""
        indices = distributed.RankSamples(self.iteration, int(self.settings["iterations"]),
                                          int(self.settings["batch_size"]), self.env.rank, self.env.world_size)
        workers = int(self.settings["num_workers"])
        pin = self.settings["pin_memory"]
        prefetch = self.settings["prefetch_factor"]
        return DataLoader(
            self.train_set, batch_size=self.local_batch, sampler=indices, drop_last=True, num_workers=workers,
            pin_memory=self.device.type == "cuda" if pin == "auto" else bool(pin), persistent_workers=workers > 0,
            worker_init_fn=_loader_worker_init if workers > 0 else None,
            prefetch_factor=int(prefetch) if workers > 0 and prefetch is not None else None,
        )

    def step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
        """One optimisation step; returns (this rank's loss as a detached 0-d tensor on the device, so the
        step never waits for the device; learning rate used)."""
        self.net.train()
        blur = batch["blur"].to(self.device, non_blocking=True)
        ref = batch["ref"].to(self.device, non_blocking=True)
        gt = batch["gt"].to(self.device, non_blocking=True)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.bf16):
            out = self.net(blur, ref)
        loss = charbonnier(out.float(), gt, eps=float(self.settings["charbonnier_eps"]))
        loss.backward()
        self.flow.before_step(self.iteration)
        self.optimizer.step()
        self.scheduler.step()
        self.iteration += 1
        return loss.detach(), float(lr)

    def validate(self) -> float:
        value = validate(self.model, self.valid, int(self.settings["frames"]), self.device, self.env)
        self.best.update(value, self.iteration, self.model)
        return value

    def checkpoint(self) -> dict[str, Any]:
        ckpt = {
            "method": self.method,
            "model_kwargs": self.model_kwargs,
            "state_dict": cpu_state(self.model),
            "best_state_dict": self.best.state,
            "best_val_psnr": self.best.best_psnr,
            "best_iteration": self.best.iteration,
            "iteration": self.iteration,
            "seed": self.seed,
            "settings": self.settings,
            "params": self.params,
        }
        if not self.trainable:
            ckpt["note"] = ZERO_PARAM_NOTE
        return ckpt

    def save(self) -> None:
        """Final checkpoint and log, each written atomically (rank 0 only)."""
        if not self.env.is_main:
            return
        save_torch(self.checkpoint(), self.out_checkpoint)
        if self.log_csv is not None:
            write_text(self.log_csv, csv_text(self.log, LOG_COLUMNS))

    # -- resume -------------------------------------------------------------------------------
    def fingerprint(self) -> str:
        return run_fingerprint(self.method, self.model_kwargs, self.seed, self.settings, self.train_dir,
                               self.valid_dir)

    def save_resume(self, reason: str) -> None:
        """The whole training state, atomically, to the resume file (rank 0; all ranks hold the same state)."""
        if self.env.is_main:
            write_resume(self.resume_file, self.fingerprint(), reason, {
                "iteration": self.iteration,
                "world_size": self.env.world_size,
                "model": cpu_state(self.model),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_state(self.device),
                "log": self.log,
                **self.best.resume_fields(),
            })
        distributed.barrier(self.env)

    def load_resume(self) -> bool:
        """Continue from the resume file when there is a valid one; returns whether it did."""
        if not (self.resume and self.resume_file.is_file()):
            return False
        state = read_resume(self.resume_file, self.fingerprint(), announce=self.env.is_main)
        if state is None:
            return False
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], self.device)
        self.iteration = int(state["iteration"])
        self.log = list(state["log"])
        self.best.restore(state)
        self.resumed_from = self.iteration
        if self.env.is_main:
            print(f"asled train: resuming {self.method} seed {self.seed} at iteration {self.iteration}/"
                  f"{self.settings['iterations']} from {self.resume_file} ({state['reason']})", file=sys.stderr)
        return True

    # -- the run ------------------------------------------------------------------------------
    def progress(self) -> tqdm:
        interactive = sys.stderr.isatty()
        return tqdm(total=int(self.settings["iterations"]), initial=self.iteration, desc=f"train {self.method}",
                    unit="it", dynamic_ncols=True, disable=not self.env.is_main,
                    # a log file gets a line every 30 s, not 10 per second for days
                    mininterval=0.1 if interactive else 30.0)

    def train_loop(self, stop: dict[str, int | None]) -> float | None:
        """Resume if possible, train to the end, write the checkpoint; returns the last loss read."""
        cadence = Cadence.from_settings(self.settings)
        self.load_resume()
        self.wrap()
        with_tensorboard = self.tensorboard_dir is not None and self.env.is_main
        log = RunLog(self.log, open_tensorboard(self.tensorboard_dir, self.resumed_from) if with_tensorboard else None)
        if self.iteration == 0 and cadence.val_every > 0:
            # the starting point is a candidate too: a curve begins at the untrained model (the blurry
            # input itself under identity_start), and training that never beats it keeps it as "best"
            log.validation(0, self.validate())
        try:
            last_loss = self._steps(cadence, stop, log)
        finally:
            log.close()
        self.save()
        if self.env.is_main:
            self.resume_file.unlink(missing_ok=True)
        distributed.barrier(self.env)
        return last_loss

    def _steps(self, cadence: Cadence, stop: dict[str, int | None], log: RunLog) -> float | None:
        """Steps up to `iterations`. Losses stay on the device until an event (`Cadence.due`) reads them;
        a preemption signal is acted on then: resume file written, `Preempted` raised."""
        last_loss: float | None = None
        with self.progress() as bar:
            data = iter(self.loader())
            pending: list[tuple[int, torch.Tensor, float]] = []  # steps whose loss is still on the device
            t_read = time.perf_counter()
            while self.iteration < cadence.total:
                loss, lr = self.step(next(data))
                pending.append((self.iteration, loss, lr))
                validate, periodic, read = cadence.due(self.iteration)
                if not read:
                    continue
                losses, stops = read_losses(pending, stop, self.env, self.device)
                seconds, t_read = time.perf_counter() - t_read, time.perf_counter()
                log.steps(pending, losses, seconds, bar, self.validate() if validate else None, self.iteration)
                last_loss, pending = losses[-1], []
                if self.iteration < cadence.total and stops:
                    signum = stop["signal"] or signal.SIGTERM  # another rank was signalled
                    self.save_resume(f"stopped by {signal.Signals(signum).name}")
                    raise Preempted(signum, self.iteration, self.resume_file)
                if periodic:
                    self.save_resume("periodic")
        return last_loss

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        last_loss: float | None = None
        try:
            with deterministic(self.device), tf32(bool(self.settings["tf32"])), preemption_signals() as stop:
                if not self.trainable:
                    self.log.append({"iteration": 0, "val_psnr": self.validate()})
                    self.save()
                else:
                    last_loss = self.train_loop(stop)
        finally:
            distributed.teardown(self.env)
        return self.summary(last_loss, time.perf_counter() - t0)

    def summary(self, last_loss: float | None, seconds: float) -> dict[str, Any]:
        """What `train` returns (and `asled train` prints)."""
        return {
            "method": self.method,
            "seed": self.seed,
            "device": describe_device(self.device),
            "world_size": self.env.world_size,
            "params": self.params,
            "trained": self.trainable,
            "iterations": self.iteration,
            "resumed_from": self.resumed_from,
            "final_loss": last_loss,
            "best_val_psnr": self.best.best_psnr,
            "best_iteration": self.best.iteration,
            "last_val_psnr": self.best.last_psnr,
            "precision": self.settings["precision"],
            "channels_last": bool(self.settings["channels_last"]),
            "compile": self.settings["compile"],
            "tf32": bool(self.settings["tf32"]),
            "seconds": seconds,
            "checkpoint": str(self.out_checkpoint),
            "log_csv": str(self.log_csv) if self.log_csv is not None else None,
            "tensorboard": str(self.tensorboard_dir) if self.tensorboard_dir is not None else None,
            **({} if self.trainable else {"note": ZERO_PARAM_NOTE}),
        }


def train(*args, **kwargs) -> dict:
    """Train a method and write its checkpoint (and loss log); arguments are `Trainer`'s.

    Checkpoint: {"method", "model_kwargs", "state_dict" (last), "best_state_dict", "best_val_psnr",
    "best_iteration", "iteration", "seed", "settings", "params"} (+ "note" for zero-parameter models).
    Log CSV columns: iteration, loss, lr (the rate used by that step), val_psnr (blank when not validated).
    Raises `Preempted` after SIGTERM / SIGUSR1 (the resume file is then written).
    """
    return Trainer(*args, **kwargs).run()
