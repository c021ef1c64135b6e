"""FLOP counts, the device's measured peak, and utilisation (MFU): the one home of that arithmetic.

Counting: `torch.utils.flop_counter.FlopCounterMode` over a model built on the **meta device** (shapes
only: nothing is allocated or computed, so a full-size model at 256x256 counts in about a second on any
machine). Figures are **FLOP, 2 per multiply-accumulate** (a `k x n` by `n x m` matmul is `2 k n m`),
the convention of `torch.utils.flop_counter`. What is counted: matmuls (mm, bmm, addmm, baddbmm),
convolutions and attention kernels (torch's formulas), plus torchvision's `deform_conv2d` (its
convolution, registered here: 2 x output elements x C_in/groups x k_h x k_w; backward 2x forward, as
torch counts a convolution's). Pointwise ops (activations, adds, the bilinear taps of `grid_sample`,
softmax's exponentials) are not counted by convention; every other op that ran without a formula is
named in `not_counted`, so a reader sees what the figure leaves out.

Peak: a fixed-size GEMM (`torch.mm`) and a fixed-size 3x3 convolution timed in this process (bf16 on
CUDA, fp32 on CPU), the faster counting (`measure_peak`). MFU = achieved FLOP/s / that peak: the fraction of the
measured matrix rate a workload reaches.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from math import prod

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from asled.device import synchronize

FLOP_CONVENTION = "FLOP (2 per multiply-accumulate), torch.utils.flop_counter on the meta device"
# Peak probe: square GEMM side, multiplications per trial, trials (the fastest trial counts: other processes
# on a shared machine can only slow a trial down). About 0.5 s on one CPU core; well under 1 s on a GPU.
PEAK_SIZES = {"cuda": 8192, "cpu": 1024}
PEAK_REPEATS = {"cuda": 20, "cpu": 1}
PEAK_TRIALS = 5
# The second probe, a 3x3 convolution (batch, channels in = out, side): the kernels the models run on
PEAK_CONV = {"cuda": (8, 512, 128), "cpu": (1, 256, 64)}


def _deform_conv_flop(inp, weight, offset, *args, out_shape=None, **kwargs) -> int:
    """torchvision::deform_conv2d: the convolution over the sampled taps (bilinear sampling not counted)."""
    return 2 * prod(out_shape) * prod(weight[1:])


def _deform_conv_backward_flop(grad, inp, weight, *args, out_shape=None, **kwargs) -> int:
    """Gradients of input and weight, 2x the forward (torch's convention for a convolution's backward)."""
    return 2 * 2 * prod(grad) * prod(weight[1:])


def _custom_formulas() -> dict:
    """Formulas for ops torch does not know; only those whose library is loaded (torchvision is optional)."""
    mapping = {}
    try:
        import torchvision  # noqa: F401  (registers torch.ops.torchvision)

        mapping[torch.ops.torchvision.deform_conv2d] = _deform_conv_flop
        mapping[torch.ops.torchvision._deform_conv2d_backward] = _deform_conv_backward_flop
    except (ImportError, AttributeError):
        pass
    return mapping


class _OpRecorder(TorchDispatchMode):
    """Names every op that runs (inside FlopCounterMode), so uncounted ones can be listed."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()
        self.pointwise: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        packet = func._overloadpacket
        self.ops[packet] += 1
        if torch.Tag.pointwise in func.tags or getattr(func, "is_view", False):
            self.pointwise.add(str(packet))
        return func(*args, **(kwargs or {}))


# Ops that move, allocate or reshape data: no arithmetic, never listed as "not counted".
_NO_ARITHMETIC = ("cat", "stack", "clone", "copy", "copy_", "empty", "empty_like", "zeros", "zeros_like", "ones",
                  "ones_like", "full", "new_empty", "new_zeros", "new_full", "fill_", "zero_", "_to_copy", "arange",
                  "lift_fresh", "detach", "constant_pad_nd", "index", "index_select", "gather", "slice_scatter",
                  "select_scatter", "index_put", "index_put_", "scatter", "_unsafe_view", "split", "split_with_sizes",
                  "unbind", "expand", "permute", "t", "transpose", "view", "reshape", "squeeze", "unsqueeze",
                  "slice", "select", "as_strided", "alias", "flip", "roll", "repeat", "linspace", "meshgrid",
                  "empty_strided", "set_", "resize_", "_local_scalar_dense", "new_ones", "unfold", "pixel_shuffle",
                  "pixel_unshuffle", "channel_shuffle", "narrow", "contiguous", "masked_fill", "masked_fill_",
                  "scalar_tensor")


def count_flops(fn: Callable[[], object]) -> dict:
    """FLOPs of everything `fn()` runs (call it on meta tensors). Returns {"flops", "by_op", "not_counted"}."""
    recorder = _OpRecorder()
    counter = FlopCounterMode(display=False, custom_mapping=_custom_formulas())
    with counter, recorder:
        fn()
    by_op = {str(op): int(v) for op, v in counter.get_flop_counts().get("Global", {}).items()}
    counted = {str(op) for op in counter.flop_registry}
    skip = recorder.pointwise | counted | {f"aten.{n}" for n in _NO_ARITHMETIC}
    # the backward of a pointwise or data-movement op (leaky_relu_backward, slice_backward) is one too
    not_counted = sorted(str(op) for op in recorder.ops
                         if str(op) not in skip and str(op).removesuffix("_backward") not in skip)
    return {"flops": int(counter.get_total_flops()), "by_op": by_op, "not_counted": not_counted}


def model_flops(build: Callable[[], torch.nn.Module], shape: tuple[int, ...], *, backward: bool = False) -> dict:
    """FLOPs of one forward (and backward, with a Charbonnier loss) of `build()` on a `shape` clip,
    everything on the meta device. `shape` is `[B, T, 3, H, W]`; the clip is both streams and target."""
    from asled.losses import charbonnier

    with torch.device("meta"):
        model = build()
        clip = torch.empty(shape)
    model.train(backward)

    def run() -> None:
        if backward:
            charbonnier(model(clip, clip).float(), clip, eps=1e-3).backward()
        else:
            with torch.no_grad():
                model(clip, clip)

    result = count_flops(run)
    result["shape"] = list(shape)
    result["pass"] = "forward+backward" if backward else "forward"
    return result


def safe_model_flops(build: Callable[[], torch.nn.Module], shape: tuple[int, ...], *, backward: bool = False) -> dict:
    """`model_flops`, or {"flops": None, "flops_unavailable": reason} when a model cannot run on meta
    (e.g. data-dependent control flow): never a made-up number."""
    try:
        return model_flops(build, shape, backward=backward)
    except Exception as exc:  # any model; the reason is reported, not a guess
        return {"flops": None, "flops_unavailable": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                "shape": list(shape), "pass": "forward+backward" if backward else "forward"}


# ----------------------------------------------------------------------------- peak and MFU
def _best_seconds(fn: Callable[[], object], device: torch.device, repeats: int, trials: int) -> float:
    """Fastest of `trials` timed runs of `repeats` calls, after one warm-up call."""
    times = []
    with torch.inference_mode():
        fn()
        for _ in range(max(1, trials)):
            synchronize(device)
            t0 = time.perf_counter()
            for _ in range(repeats):
                fn()
            synchronize(device)
            times.append(time.perf_counter() - t0)
    return min(times)


def measure_peak(device: torch.device, size: int | None = None, repeats: int | None = None,
                 trials: int = PEAK_TRIALS, conv: tuple[int, int, int] | None = None) -> dict:
    """The matrix rate this process reaches, bf16 on CUDA, fp32 on CPU (at the current torch thread count),
    measured two ways: a `size`^3 GEMM (`torch.mm`: MKL / cuBLAS) and a 3x3 convolution of `conv` =
    (batch, channels, side) (oneDNN / cuDNN, the kernels the models' convolutions run on). The faster way
    counts: on AMD CPUs MKL's sgemm reaches about half of oneDNN's convolution rate, and a peak below
    what the models' own kernels reach would give MFUs above 1. Each way: one warm-up, then the fastest
    of `trials` runs of `repeats` calls. On a CPU, bf16 kernels (AVX512-BF16 / AMX) can still beat this
    fp32 peak. Returns {"tflops", "dtype", "threads", "by_way" (TFLOP/s of each way), "method", ...}."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    size = int(size or PEAK_SIZES[kind])
    repeats = int(repeats or PEAK_REPEATS[kind])
    batch, channels, side = conv or PEAK_CONV[kind]
    dtype = torch.bfloat16 if kind == "cuda" else torch.float32
    name = str(dtype).replace("torch.", "")
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(device=device, dtype=dtype) for _ in range(2))
    x = torch.randn(batch, channels, side, side, generator=generator).to(device=device, dtype=dtype)
    w = torch.randn(channels, channels, 3, 3, generator=generator).to(device=device, dtype=dtype)
    gemm_flops = 2 * size**3 * repeats
    conv_flops = 2 * batch * channels * channels * 9 * side * side * repeats
    by_way = {
        "torch.mm": gemm_flops / _best_seconds(lambda: torch.mm(a, b), device, repeats, trials) / 1e12,
        "conv3x3": conv_flops / _best_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1), device, repeats,
                                              trials) / 1e12,
    }
    return {"tflops": max(by_way.values()), "dtype": name, "size": size, "conv": [batch, channels, side],
            "repeats": repeats, "trials": trials, "threads": torch.get_num_threads(), "by_way": by_way,
            "method": f"the faster of a {size}x{size}x{size} torch.mm and a 3x3 conv2d ({channels} -> {channels} "
            f"channels, {batch} x {side}x{side}), {name}: fastest of {trials} runs of {repeats} calls each after "
            "one warm-up, in this process"}


def utilisation(flops: float | None, seconds: float, peak: dict | None) -> dict:
    """{"tflops_per_s", "mfu"} of `flops` done in `seconds` against `peak` (`measure_peak`); None where
    the count or the peak is unavailable, or the count is 0."""
    if not flops or seconds <= 0:  # unavailable, or nothing computed (the Blur frame): no utilisation
        return {"tflops_per_s": None, "mfu": None}
    achieved = flops / seconds / 1e12
    mfu = achieved / peak["tflops"] if peak and peak.get("tflops") else None
    return {"tflops_per_s": achieved, "mfu": mfu}
