"""The speed options of training, in one place: `asled.train.Trainer` and `asled bench train` apply them
through these functions, so a benchmarked configuration is exactly what a recipe trains with.

* `precision: bf16`: autocast to bfloat16 for the forward pass; weights, gradients and Adam's state stay
  fp32 (fp32 master weights), the loss is computed in fp32.
* `channels_last`: weights (and hence activations of convolutions) in NHWC order.
* `tf32`: TF32 tensor cores for whatever stays fp32 (CUDA matmuls and cuDNN convolutions); no effect on CPU.
* `compile`: `false`; `true` (`torch.compile` of the whole model, which can take many minutes on a deep
  recurrent model); `regional` (each instance of the model's most repeated block, e.g. its residual
  blocks, compiled in place: one compiled graph reused by all of them, so it compiles in seconds to
  minutes while the recurrent loop stays eager).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import torch
from torch import nn

COMPILE_MODES = (False, True, "regional")


def check_compile(value) -> bool | str:
    """`compile` as a recipe may write it: false / true / "regional"."""
    if value in COMPILE_MODES:
        return value
    raise ValueError(f"'compile' must be false, true or \"regional\", got {value!r}")


def repeated_block(model: nn.Module) -> type[nn.Module] | None:
    """The module class regional compilation targets: the non-leaf class with the most instances that own
    parameters (e.g. `ResidualBlock` in AsLeD-Net, BasicVSR and EDVR, `NAFBlock` in NAFNet); None if no
    class repeats. Containers (Sequential, ModuleList, ModuleDict) are not blocks."""
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
    counts = Counter(type(m) for m in model.modules()
                     if m is not model and not isinstance(m, containers) and any(True for _ in m.children())
                     and any(True for _ in m.parameters()))
    if not counts:
        return None
    block, n = counts.most_common(1)[0]
    return block if n > 1 else None


def compile_model(model: nn.Module, mode: bool | str) -> nn.Module:
    """The module to train under `compile` = `mode` (see the module docstring); regional compilation
    changes `model`'s blocks in place and returns `model` itself."""
    mode = check_compile(mode)
    if mode is True:
        return torch.compile(model)
    if mode == "regional":
        block = repeated_block(model)
        for module in model.modules():
            if block is not None and type(module) is block:
                module.compile()
    return model


def memory_format(model: nn.Module, channels_last: bool) -> nn.Module:
    return model.to(memory_format=torch.channels_last) if channels_last else model


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls and cuDNN convolutions while active (when `enabled`); the previous settings are restored."""
    previous = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        if enabled:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast of a forward pass (a no-op context when `bf16` is false)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
