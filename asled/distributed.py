"""Data-parallel training: the process group, each rank's share of the sample stream, and the torchrun launcher.

One training run is one or more processes ("ranks"). With more than one, `asled train` re-launches
itself under torchrun (`python -m torch.distributed.run`); each worker sees torchrun's environment
(`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, ...) and joins the process group: NCCL on CUDA
(one GPU per rank, `cuda:<LOCAL_RANK>`), gloo on CPU.

The sample stream does not depend on the number of ranks: iteration `k` with global batch `B` trains
on samples `k*B ... k*B + B-1` of `TrainClips(seed)`; rank `r` of `W` takes `k*B + r`, `k*B + r + W`, ...
(the strided split of `torch.utils.data.DistributedSampler`), `B / W` samples. DDP averages the ranks'
gradients, and Charbonnier is a mean over equally sized local batches, so a step on `W` ranks applies
the gradient of the whole global batch, as one process with batch `B` does (equal up to the order of
floating-point sums).

Multi-node (SLURM): run one `asled train ... --nproc G --nnodes N --rdzv-endpoint HOST:PORT` per node
through `srun --ntasks-per-node=1`; torchrun's c10d rendezvous at HOST:PORT (the first node) forms the
group of `N*G` ranks. See docs/training.md, "Training engine".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from asled.errors import ConfigError

# Variables torchrun sets in every worker; their presence means "I am a rank, do not launch again".
WORKER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def in_worker() -> bool:
    return all(v in os.environ for v in WORKER_VARIABLES)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in the run. `world_size == 1`: a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def worker_device(requested: torch.device, local_rank: int) -> torch.device:
    """The device of this rank: `cuda:<local_rank>` when training on CUDA, else the CPU."""
    if requested.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"rank with LOCAL_RANK={local_rank} has no GPU: this node shows {torch.cuda.device_count()} "
                "CUDA device(s); lower `devices` (train recipe) or --nproc to the GPUs per node"
            )
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(requested: torch.device) -> tuple[DistEnv, torch.device]:
    """Join the process group when launched by torchrun with more than one rank; otherwise a no-op."""
    if not in_worker() or int(os.environ["WORLD_SIZE"]) < 2:
        return DistEnv(), requested
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    device = worker_device(requested, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, **({"device_id": device} if device.type == "cuda" else {}))
    return DistEnv(rank, world, local_rank, local_world, backend), device


def teardown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def check_batch(batch_size: int, world_size: int) -> int:
    """Per-rank batch; the global batch must split evenly so that every rank's mean weighs the same."""
    if batch_size % world_size:
        raise ConfigError(
            f"batch_size {batch_size} does not split over {world_size} ranks; use a batch_size that is a "
            f"multiple of the number of processes (train recipe `devices` or --nproc)"
        )
    return batch_size // world_size


class RankSamples(Sequence):
    """Sample indices rank `rank` of `world_size` trains on for iterations `start ... stop-1`, in order."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        self.start, self.stop = int(start), int(stop)
        self.batch_size, self.rank, self.world_size = int(batch_size), int(rank), int(world_size)
        self.local = check_batch(self.batch_size, self.world_size)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.local

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not 0 <= i < len(self):
            raise IndexError(i)
        iteration, j = divmod(i, self.local)
        return (self.start + iteration) * self.batch_size + self.rank + j * self.world_size


def all_reduce_sum(values: list[float], env: DistEnv, device: torch.device) -> list[float]:
    """Sum of `values` over all ranks (float64); the values themselves on a single process."""
    if not env.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


# ----------------------------------------------------------------------------- the launcher
def torchrun_command(
    worker_args: list[str],
    nproc: int,
    *,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    rdzv_id: str | None = None,
) -> list[str]:
    """`python -m torch.distributed.run ... -m asled <worker_args>`: single node standalone, else c10d rendezvous."""
    if nproc < 1 or nnodes < 1:
        raise ConfigError(f"--nproc ({nproc}) and --nnodes ({nnodes}) must be positive")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd.append("--standalone")
    else:
        if rdzv_endpoint is None:
            raise ConfigError(
                f"--nnodes {nnodes} needs --rdzv-endpoint HOST:PORT (the first node), e.g. "
                "$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500"
            )
        run_id = rdzv_id or os.environ.get("SLURM_JOB_ID") or "asled"
        cmd += [f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}", f"--rdzv-id={run_id}"]
    return cmd + ["-m", "asled", *worker_args]


def launch(cmd: list[str], forward_signals: tuple[int, ...]) -> tuple[int, int | None]:
    """Run the torchrun command; a preemption signal received here is passed on as SIGTERM.

    torchrun answers SIGTERM by sending it to its workers, which finish their step, write the resume
    checkpoint and exit. Returns (torchrun's exit code, the signal received here or None).
    """
    received: list[int] = []
    proc = subprocess.Popen(cmd)

    def forward(signum, _frame) -> None:
        received.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in forward_signals}
    try:
        while True:
            try:
                rc = proc.wait()
                break
            except InterruptedError:  # pragma: no cover - wait() retries EINTR itself on Python >= 3.5
                time.sleep(0.1)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return rc, (received[0] if received else None)


def file_written_since(path: Path, t0: float) -> bool:
    try:
        return Path(path).stat().st_mtime >= t0
    except FileNotFoundError:
        return False
