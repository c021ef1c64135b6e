"""Micro-benchmarks. `bench_alm`: memory and time of ALM's matching at growing feature-map sizes.

Three ways to compute the same per-position top-K aggregation (K = 3, cosine similarity, batch 1):

* ``naive``: all pairs at once, the full `[H*W, H*W]` similarity matrix (16 GiB in fp32 at 256x256).
  Run only when that matrix fits under `memory_limit_gib`; otherwise reported as skipped with the size
  it would need (the matrix alone, so a lower bound).
* ``chunked``: `asled.models.alm.global_topk_aggregate`, exact global matching, query rows in chunks
  of `chunk_size`; must equal naive (the max abs difference is reported).
* ``window``: `asled.models.alm.window_topk_aggregate`, matches within a `window x window`
  neighbourhood; an approximation, so no difference to global matching is reported.

Inputs are seeded standard-normal feature maps; every case runs in inference mode in this one process.

Measurements:

* time: wall clock of each run (synchronised on CUDA); the median over `repeats` runs.
* peak extra memory: on CUDA, `torch.cuda.max_memory_allocated()` minus the allocation before the run
  (peak stats reset before each run). On CPU, torch keeps no allocator statistics, so the process's
  resident-set high-water mark is used: before each run free heap pages go back to the OS
  (`malloc_trim(0)`) and the kernel's high-water mark is reset to the current RSS (writing "5" to
  /proc/self/clear_refs, Linux >= 4.0); after the run, VmHWM - VmRSS(before) from /proc/self/status is
  the peak extra resident memory of the run (inputs excluded, outputs and temporaries included; page
  granular). The largest value over the runs is reported. Where /proc/self/clear_refs cannot be
  written, CPU memory is reported as null, never estimated.
"""

from __future__ import annotations

import ctypes
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from asled.errors import ConfigError
from asled.device import describe_device, resolve_device, synchronize
from asled.models.alm import global_topk_aggregate, window_topk_aggregate

GIB = 1024**3


def naive_topk_aggregate(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, k: int = 3) -> torch.Tensor:
    """All pairs at once: the full `[N, Nq, Nk]` similarity matrix, then top-k, softmax and sum."""
    q = F.normalize(query.flatten(2), dim=1).transpose(1, 2)
    kn = F.normalize(key.flatten(2), dim=1).transpose(1, 2)
    v = value.flatten(2).transpose(1, 2)
    sim = q @ kn.transpose(1, 2)  # [N, Nq, Nk]
    top, idx = sim.topk(min(k, kn.shape[1]), dim=2)
    del sim
    weights = torch.softmax(top, dim=2)
    gathered = torch.stack([v[b][idx[b]] for b in range(v.shape[0])])  # [N, Nq, k, Cv]
    out = (weights.unsqueeze(-1) * gathered).sum(2)
    return out.transpose(1, 2).reshape(value.shape[0], value.shape[1], *query.shape[-2:])


def naive_bytes(batch: int, positions: int, element_size: int = 4) -> int:
    """Bytes of the naive method's similarity matrix (its dominant allocation; a lower bound)."""
    return batch * positions * positions * element_size


# ----------------------------------------------------------------------------- memory probes
class _CpuMemory:
    """Peak extra resident memory of a region: reset VmHWM, run, read VmHWM - VmRSS(start)."""

    method = "cpu: VmHWM - VmRSS after malloc_trim(0) and a VmHWM reset via /proc/self/clear_refs ('5')"

    def __init__(self) -> None:
        try:
            self._libc = ctypes.CDLL("libc.so.6")
        except OSError:
            self._libc = None
        self.available = self._reset()

    @staticmethod
    def _status_kib(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise OSError(f"{field} not in /proc/self/status")

    def _reset(self) -> bool:
        try:
            if self._libc is not None:
                self._libc.malloc_trim(0)
            Path("/proc/self/clear_refs").write_text("5")
            self._status_kib("VmHWM")
            return True
        except OSError:
            return False

    def start(self) -> None:
        self._reset()
        self._base = self._status_kib("VmRSS")

    def stop(self) -> int:
        return max(0, self._status_kib("VmHWM") - self._base) * 1024


class _CudaMemory:
    method = "cuda: torch.cuda.max_memory_allocated() - torch.cuda.memory_allocated() before the run"
    available = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def start(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        self._base = torch.cuda.memory_allocated(self.device)

    def stop(self) -> int:
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - self._base


def _measure(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device, memory) -> tuple[dict, torch.Tensor]:
    times, peaks, out = [], [], None
    for _ in range(repeats):
        out = None  # the previous output must not count towards this run's peak
        if memory.available:
            memory.start()
        synchronize(device)
        t0 = time.perf_counter()
        out = fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
        if memory.available:
            peaks.append(memory.stop())
    result = {
        "seconds_median": statistics.median(times),
        "seconds": [round(t, 4) for t in times],
        "peak_extra_bytes": max(peaks) if peaks else None,
        "peak_extra_mib": round(max(peaks) / 2**20, 1) if peaks else None,
    }
    return result, out


def default_repeats(size: int) -> int:
    """Fewer repeats for the big maps: global matching grows with (H*W)^2."""
    return 5 if size <= 64 else 3 if size <= 128 else 1


def default_memory_limit_gib(dev: torch.device) -> float:
    """80% of the memory free right now (GPU memory on CUDA, MemAvailable on CPU): the naive case runs
    wherever it can, e.g. its 16 GiB at 256x256 on a 24 GiB machine, and is skipped where it cannot."""
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return 0.8 * free / GIB
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    return 0.8 * int(fields["MemAvailable"].split()[0]) * 1024 / GIB


def _check_alm_settings(sizes: tuple[int, ...], channels: int, chunk_size: int, k: int, window: int,
                        repeats: int | None) -> None:
    if not sizes or min(sizes) < 1 or channels < 1 or chunk_size < 1 or k < 1 or (repeats is not None and repeats < 1):
        raise ConfigError(
            f"bench settings must be positive (sizes {sizes}, channels {channels}, chunk_size {chunk_size}, "
            f"top_k {k}, repeats {repeats})"
        )
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"window must be a positive odd number (2r+1), got {window}")


def _warm_up_alm(dev: torch.device, channels: int, k: int, window: int, chunk_size: int) -> None:
    """One small run of each method: thread pools, kernels and allocator start-up must not count towards the
    first case."""
    with torch.inference_mode():
        small = torch.randn(1, channels, 16, 16, device=dev)
        naive_topk_aggregate(small, small, small, k)
        global_topk_aggregate(small, small, small, k, chunk_size)
        window_topk_aggregate(small, small, small, k, window, chunk_size)
        synchronize(dev)


def _alm_ratios(naive: dict, chunked: dict, window: dict) -> dict[str, float]:
    """Time and memory ratios naive/chunked (where naive ran) and chunked/window (memory where measured)."""
    ratios = {}
    if "skipped" not in naive:
        ratios["naive_over_chunked_time"] = naive["seconds_median"] / chunked["seconds_median"]
        if naive["peak_extra_bytes"] and chunked["peak_extra_bytes"]:
            ratios["naive_over_chunked_memory"] = naive["peak_extra_bytes"] / chunked["peak_extra_bytes"]
    ratios["chunked_over_window_time"] = chunked["seconds_median"] / window["seconds_median"]
    if chunked["peak_extra_bytes"] and window["peak_extra_bytes"]:
        ratios["chunked_over_window_memory"] = chunked["peak_extra_bytes"] / window["peak_extra_bytes"]
    return {name: round(value, 3) for name, value in ratios.items()}


def _alm_case(size: int, settings: dict, repeats: int | None, dev: torch.device, memory) -> dict:
    """The three methods on one seeded `size x size` map (`settings` as `bench_alm` reports them)."""
    k, chunk_size, window = settings["top_k"], settings["chunk_size"], settings["window"]
    limit_gib = settings["memory_limit_gib"]
    generator = torch.Generator().manual_seed(settings["seed"] + size)
    query = torch.randn(1, settings["channels"], size, size, generator=generator).to(dev)
    key = torch.randn(1, settings["channels"], size, size, generator=generator).to(dev)
    runs = repeats or default_repeats(size)
    positions = size * size
    need = naive_bytes(1, positions)
    case: dict = {"size": size, "positions": positions, "repeats": runs}
    with torch.inference_mode():
        chunked, out_chunked = _measure(lambda: global_topk_aggregate(query, key, key, k, chunk_size), runs, dev, memory)
        window_result, out_window = _measure(
            lambda: window_topk_aggregate(query, key, key, k, window, chunk_size), runs, dev, memory
        )
        del out_window  # a held output would count towards the naive run's peak
        if need > limit_gib * GIB:
            naive = {
                "skipped": f"would need {need / GIB:.1f} GiB for the {positions} x {positions} fp32 similarity "
                f"matrix alone (limit {limit_gib:g} GiB)",
                "needs_bytes_at_least": need,
            }
            diff = None
        else:
            naive, out_naive = _measure(lambda: naive_topk_aggregate(query, key, key, k), runs, dev, memory)
            naive["similarity_matrix_bytes"] = need
            diff = (out_naive - out_chunked).abs().max().item()
            del out_naive
    del out_chunked
    case.update({"naive": naive, "chunked": chunked, "window": window_result})
    case["max_abs_diff_chunked_vs_naive"] = diff
    case["ratios"] = _alm_ratios(naive, chunked, window_result)
    return case


def bench_alm(
    sizes: tuple[int, ...] = (64, 128, 256),
    channels: int = 64,
    chunk_size: int = 4096,
    device: str = "auto",
    *,
    k: int = 3,
    window: int = 15,
    memory_limit_gib: float | None = None,
    repeats: int | None = None,
    seed: int = 0,
) -> dict:
    """Time and peak memory of naive / chunked global / windowed top-K matching per `size x size` map.

    Returns a JSON-ready dict: settings, device, the memory method, and per size the three cases, the
    max abs difference chunked vs naive (where naive ran) and naive/chunked memory and time ratios.
    """
    _check_alm_settings(sizes, channels, chunk_size, k, window, repeats)
    dev = resolve_device(device)
    if memory_limit_gib is None:
        memory_limit_gib = default_memory_limit_gib(dev)
    memory = _CudaMemory(dev) if dev.type == "cuda" else _CpuMemory()
    _warm_up_alm(dev, channels, k, window, chunk_size)
    settings = {
        "channels": channels,
        "batch": 1,
        "top_k": k,
        "chunk_size": chunk_size,
        "window": window,
        "memory_limit_gib": memory_limit_gib,
        "seed": seed,
        "dtype": "float32",
    }
    cases = [_alm_case(size, settings, repeats, dev, memory) for size in sizes]
    return {
        "benchmark": "alm_matching",
        "device": describe_device(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "settings": settings,
        "time": "median wall seconds over the repeats (synchronised on CUDA), inference mode",
        "memory": memory.method if memory.available else "unavailable (cannot reset the CPU high-water mark here): null",
        "cases": cases,
    }


# ----------------------------------------------------------------------------- training throughput
# Speed configurations of `bench_train`: the recipe keys `precision`, `channels_last`, `compile`, `tf32`
# (asled/fastpath.py), applied exactly as `asled.train.Trainer` applies them.
def _config(precision="fp32", channels_last=False, compile=False, tf32=False) -> dict:
    return {"precision": precision, "channels_last": channels_last, "compile": compile, "tf32": tf32}


TRAIN_CONFIGS = {
    "fp32_eager": _config(),
    "tf32": _config(tf32=True),
    "channels_last": _config(channels_last=True),
    "tf32_channels_last": _config(channels_last=True, tf32=True),
    "compile": _config(compile=True),
    "regional_compile": _config(compile="regional"),
    "bf16": _config("bf16"),
    "bf16_channels_last": _config("bf16", channels_last=True),
    "bf16_channels_last_regional": _config("bf16", channels_last=True, compile="regional"),
    "bf16_channels_last_compile": _config("bf16", channels_last=True, compile=True),
}
# Candidates for "fastest" per device type. Whole-model torch.compile is left out by default: on AsLeD-Net
# it did not finish compiling in 330 s on an H200, and inductor spends minutes on a small CPU; ask for it
# (or regional compilation on a CPU) with `configs`.
FAST_CANDIDATES = {
    "cuda": ("tf32_channels_last", "bf16", "bf16_channels_last", "bf16_channels_last_regional"),
    "cpu": ("channels_last", "bf16", "bf16_channels_last"),
}
# Workload defaults: the paper's training batch on a GPU, a small one on a CPU (a full paper step takes
# tens of seconds there).
TRAIN_SHAPES = {
    "cuda": {"batch": 4, "frames": 7, "crop": 128, "iterations": 20, "warmup": 5},
    "cpu": {"batch": 1, "frames": 3, "crop": 64, "iterations": 3, "warmup": 1},
}


def _time_steps(step: Callable[[], torch.Tensor], warmup: int, iterations: int, device: torch.device
                ) -> tuple[float, float, torch.Tensor]:
    """`warmup` untimed steps, then `iterations` timed ones, each phase synchronised at its end (the loss
    stays on the device in between); returns (warm-up seconds, timed seconds, the last loss)."""
    t_warm = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warm_seconds = time.perf_counter() - t_warm
    t0 = time.perf_counter()
    for _ in range(iterations):
        loss = step()
    synchronize(device)
    return warm_seconds, time.perf_counter() - t0, loss


def train_throughput(
    method: str,
    config: dict,
    *,
    batch: int,
    frames: int,
    crop: int,
    iterations: int,
    warmup: int,
    device: torch.device,
    seed: int = 0,
    model_kwargs: dict | None = None,
) -> dict:
    """Optimisation steps per second of `method` under one speed configuration (compute only, no data loading).

    A step is what `asled.train.Trainer.step` does: Adam, Charbonnier (eps 1e-3), the configuration's
    options (asled/fastpath.py), on a `[batch, frames, 3, crop, crop]` clip of the astronaut photograph (the
    profiling input) as both streams and target; the loss stays on the device (no host sync per step).
    `warmup` untimed steps (compilation happens there), then `iterations` timed ones, synchronised on CUDA.
    """
    from asled.fastpath import autocast, compile_model, memory_format, tf32
    from asled.losses import charbonnier
    from asled.models.registry import build_model
    from asled.profiling import profile_input

    torch.manual_seed(seed)
    model = memory_format(build_model(method, **(model_kwargs or {})).to(device), config["channels_last"])
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    net = compile_model(model, config["compile"])
    net.train()
    clip = profile_input(crop, frames).expand(batch, frames, 3, crop, crop).contiguous().to(device)
    bf16 = config["precision"] == "bf16"

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, bf16):
            out = net(clip, clip)
        loss = charbonnier(out.float(), clip, eps=1e-3)
        loss.backward()
        optimizer.step()
        return loss.detach()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with tf32(config["tf32"]):
        warm_seconds, seconds, loss = _time_steps(step, warmup, iterations, device)
    result = {
        **config,
        "iterations_per_second": iterations / seconds,
        "seconds": seconds,
        "warmup_seconds": warm_seconds,
        "final_loss": float(loss),
    }
    if device.type == "cuda":
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / GIB, 3)
    return result


def _train_shape(dev: torch.device, **given) -> dict:
    shape = dict(TRAIN_SHAPES["cuda" if dev.type == "cuda" else "cpu"])
    shape.update({key: int(value) for key, value in given.items() if value is not None})
    if min(shape["batch"], shape["frames"], shape["crop"], shape["iterations"]) < 1 or shape["warmup"] < 0:
        raise ConfigError(f"bench train settings must be positive (warm-up >= 0), got {shape}")
    return shape


def _train_config_names(configs: list[str] | tuple[str, ...] | None, dev: torch.device) -> list[str]:
    """The configurations to measure, fp32 eager first (the baseline of every ratio)."""
    names = list(configs) if configs else list(FAST_CANDIDATES["cuda" if dev.type == "cuda" else "cpu"])
    unknown = [n for n in names if n not in TRAIN_CONFIGS]
    if unknown:
        raise ConfigError(f"unknown bench train configuration(s) {unknown}; choose from {list(TRAIN_CONFIGS)}")
    return ["fp32_eager", *[n for n in names if n != "fp32_eager"]]


def _measure_train_config(name: str, method: str, dev: torch.device, seed: int, kwargs: dict, shape: dict,
                          step_flops: dict, peak: dict) -> dict:
    """`train_throughput` of one named configuration with its utilisation; a configuration this device or
    build cannot run is reported with its error (fp32 eager, the baseline, must run)."""
    from asled.flops import utilisation

    try:
        result = train_throughput(method, TRAIN_CONFIGS[name], device=dev, seed=seed, model_kwargs=kwargs, **shape)
        total = None if step_flops["flops"] is None else step_flops["flops"] * shape["iterations"]
        result.update(utilisation(total, result["seconds"], peak))
        return result
    except Exception as exc:
        if name == "fp32_eager":
            raise
        return {**TRAIN_CONFIGS[name], "failed": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    finally:
        # compiled graphs and cached blocks of one configuration must not slow or starve the next
        if TRAIN_CONFIGS[name]["compile"]:
            torch._dynamo.reset()
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def bench_train(
    method: str = "asled_net",
    *,
    configs: list[str] | tuple[str, ...] | None = None,
    batch: int | None = None,
    frames: int | None = None,
    crop: int | None = None,
    iterations: int | None = None,
    warmup: int | None = None,
    device: str = "auto",
    seed: int = 0,
    model_kwargs: dict | None = None,
) -> dict:
    """Training iterations per second: plain fp32 eager vs. the fastest of `configs`, in this one process,
    each with its achieved TFLOP/s and MFU.

    `configs` (names of `TRAIN_CONFIGS`; default `FAST_CANDIDATES` for the device) are each measured; a
    configuration this device cannot run is reported with its error, never a number. `fastest` is the
    quickest configuration that ran (fp32 eager included); `speedup` = its iterations/s over fp32 eager's.
    FLOPs of one step (forward + backward; Adam's pointwise update not counted) are counted on the meta
    device (asled/flops.py); the peak is a GEMM measured here first (bf16 on CUDA, fp32 on CPU).
    `model_kwargs`: catalogue overrides (e.g. a recipe's demo scale; default: the catalogue model).
    """
    from asled.flops import FLOP_CONVENTION, measure_peak, safe_model_flops
    from asled.models.registry import build_model

    dev = resolve_device(device)
    shape = _train_shape(dev, batch=batch, frames=frames, crop=crop, iterations=iterations, warmup=warmup)
    names = _train_config_names(configs, dev)
    kwargs = dict(model_kwargs or {})
    step_flops = safe_model_flops(lambda: build_model(method, **kwargs),
                                  (shape["batch"], shape["frames"], 3, shape["crop"], shape["crop"]), backward=True)
    peak = measure_peak(dev)
    results = {name: _measure_train_config(name, method, dev, seed, kwargs, shape, step_flops, peak) for name in names}
    # fp32 eager competes too: where no option helps (e.g. bf16 on a CPU without bf16 units) it is the fastest
    ran = {n: r for n, r in results.items() if "failed" not in r}
    fastest = max(ran, key=lambda n: ran[n]["iterations_per_second"])
    base = results["fp32_eager"]["iterations_per_second"]
    return {
        "benchmark": "train_throughput",
        "method": method,
        "model_kwargs": kwargs,
        "device": describe_device(dev),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "settings": {**shape, "seed": seed, "optimizer": "Adam", "loss": "Charbonnier eps 1e-3"},
        "time": "wall seconds of `iterations` steps after `warmup` untimed ones (synchronised on CUDA); "
        "compute only, no data loading",
        "step_flops": {**step_flops, "convention": FLOP_CONVENTION},
        "step_tflop": None if step_flops["flops"] is None else step_flops["flops"] / 1e12,
        "peak": peak,
        "utilisation": "tflops_per_s = step FLOPs x iterations / seconds; mfu = tflops_per_s / peak.tflops",
        "configs": results,
        "fp32_eager_iterations_per_second": base,
        "fastest": fastest,
        "fastest_iterations_per_second": ran[fastest]["iterations_per_second"],
        "speedup": ran[fastest]["iterations_per_second"] / base,
        "ratios_to_fp32_eager": {n: r["iterations_per_second"] / base for n, r in ran.items()},
    }
