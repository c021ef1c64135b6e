"""`asled bench train --json`: AsLeD-Net training throughput, fp32 eager vs. the fastest option, on CPU."""

from __future__ import annotations

import json
import math

import pytest

from asled import cli
from asled.bench import TRAIN_CONFIGS, bench_train
from asled.errors import ConfigError


def test_bench_train_cli_json(capsys):
    rc = cli.main(["bench", "train", "--json", "--device", "cpu", "--threads", "1", "--iterations", "1",
                   "--warmup", "0", "--crop", "32", "--batch", "1", "--frames", "2", "--configs", "channels_last"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "asled_net" and result["device"].startswith("cpu:")
    assert result["settings"] | {"batch": 1, "frames": 2, "crop": 32, "iterations": 1} == result["settings"]
    assert set(result["configs"]) == {"fp32_eager", "channels_last"}
    for name, item in result["configs"].items():
        assert item["iterations_per_second"] > 0 and math.isfinite(item["final_loss"])
        assert {k: item[k] for k in ("precision", "channels_last", "compile", "tf32")} == TRAIN_CONFIGS[name]
        # utilisation: the step's counted FLOPs over the time, against the GEMM peak measured in the run
        assert item["tflops_per_s"] == pytest.approx(
            result["step_flops"]["flops"] * 1 / item["seconds"] / 1e12)
        assert item["mfu"] == pytest.approx(item["tflops_per_s"] / result["peak"]["tflops"])
    fastest = result["configs"][result["fastest"]]["iterations_per_second"]
    assert result["speedup"] == pytest.approx(fastest / result["fp32_eager_iterations_per_second"])
    assert result["speedup"] >= 1.0  # fp32 eager is itself a candidate
    assert result["step_flops"]["pass"] == "forward+backward" and result["step_flops"]["shape"] == [1, 2, 3, 32, 32]
    assert result["peak"]["dtype"] == "float32" and result["peak"]["tflops"] > 0
    assert result["ratios_to_fp32_eager"]["fp32_eager"] == 1.0


def test_bench_train_rejects_unknown_config():
    with pytest.raises(ConfigError, match="fp16_magic"):
        bench_train(configs=["fp16_magic"], device="cpu")
