"""The device a job runs on: resolving "auto", describing it for logs and tables, synchronising timers.

One home for these, used by inference, training, profiling and the benchmarks."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from asled.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA when available, else CPU; anything else is passed to `torch.device`."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' requested but CUDA is not available here; use device 'auto' or 'cpu'")
    return dev


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: torch.device) -> str:
    """Human-readable device: "cpu: <model name> x<threads> threads" or "cuda: <GPU name>"."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda: {torch.cuda.get_device_name(index)}"
    return f"cpu: {cpu_name()} x{torch.get_num_threads()} threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
