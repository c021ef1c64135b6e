"""`asled bench loader` and `asled bench blur`: small frames by default, RealMCVSR's 1080p when slow."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, tool_env

from asled.data.bench_data import bench_blur, bench_loader, synthetic_frames
from asled.errors import ConfigError


def test_synthetic_frames_look_like_a_panning_camera():
    w, uw = synthetic_frames(96, 64, 3, seed=1)
    assert w.shape == uw.shape == (3, 64, 96, 3) and w.dtype == np.uint8
    # consecutive frames differ (the pan) but stay close (a 3-pixel move, not new content)
    step = np.abs(w[1].astype(int) - w[0].astype(int)).mean()
    unrelated = np.abs(w[0].astype(int) - w[0, ::-1, ::-1].astype(int)).mean()
    assert 0 < step < unrelated


def test_bench_loader_small_frames():
    result = bench_loader(width=192, height=112, clips=2, frames=4, sample_frames=3, crop=48,
                          png_samples=3, store_samples=10)
    assert result["samples_identical"] is True
    assert result["png"]["samples"] == 3 and result["store"]["samples"] == 10
    assert result["png"]["samples_per_s"] > 0 and result["store"]["samples_per_s"] > 0
    assert result["ratio_store_over_png"] == pytest.approx(
        result["store"]["samples_per_s"] / result["png"]["samples_per_s"], rel=0.01)
    assert result["data"]["store_bytes"] == 2 * 3 * (4 * 112 * 192 * 3 + 128)  # uncompressed + .npy header


def test_bench_blur_small_frames():
    result = bench_blur(width=192, height=112, clips=2, frames=7, repeats=1)
    assert result["frames"] == 2
    for name in ("synthesis", "synthesis_store_only", "floor"):
        assert result[name]["frames_per_s"] > 0 and len(result[name]["seconds"]) == 1
    assert result["ratio_synthesis_over_floor"] == pytest.approx(
        result["synthesis"]["frames_per_s"] / result["floor"]["frames_per_s"], rel=0.01)


def test_bench_settings_are_checked():
    with pytest.raises(ConfigError, match="frames >= sample_frames"):
        bench_loader(frames=3, sample_frames=7)
    with pytest.raises(ConfigError, match="does not fit"):
        bench_loader(width=64, height=48, crop=128)
    with pytest.raises(ConfigError, match="frames >= 7"):
        bench_blur(frames=5)


def asled_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "asled", *args, "--json"], cwd=REPO, env=tool_env(),
                         capture_output=True, text=True, timeout=900, check=True)
    return json.loads(out.stdout)


@pytest.mark.slow
def test_acceptance_store_is_at_least_20x_the_png_loader_at_1080p():
    result = asled_json("bench", "loader", "--png-samples", "2", "--store-samples", "50")
    assert result["data"]["frame_size"] == [1920, 1080] and result["sample"]["crop"] == 128
    assert result["samples_identical"] is True
    assert result["ratio_store_over_png"] >= 20, result


@pytest.mark.slow
def test_blur_synthesis_stays_within_a_small_factor_of_the_io_floor_at_1080p():
    # A regression guard, not the figure: `asled bench blur` prints the ratio. Best of 3 runs on an idle
    # 2-core machine it measured 0.46-0.66 on 2026-12-03, the same at af41e09 and after (the floor is PNG
    # coding too, and both move by a third between runs), so the 2/3 once asserted here failed about
    # half the time; the same afternoon, with the host ~10 % slower on every job, 0.373 failed a 0.4 guard.
    # 0.25 still catches synthesis becoming 2x slower than it is.
    result = asled_json("bench", "blur")
    assert result["data"]["frame_size"] == [1920, 1080]
    assert result["ratio_synthesis_over_floor"] >= 0.25, result
