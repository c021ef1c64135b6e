"""Statistics of the tables: seeds, bootstrap intervals over clips, paired tests (asled.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from asled.stats import bootstrap_ci, clip_values, paired_test, seed_stats, significance_mark, wilcoxon_min_p


def test_seed_stats():
    assert seed_stats([25.0, 26.0, 27.0]) == (26.0, 1.0)
    assert seed_stats([25.0]) == (25.0, None)
    assert seed_stats([None, 24.0]) == (24.0, None)
    assert seed_stats([None]) == (None, None)


def test_bootstrap_matches_scipy_percentile_interval():
    values = list(np.random.default_rng(1).normal(25.0, 1.5, size=12))
    ours = bootstrap_ci(values, resamples=10_000, confidence=0.95, seed=0)
    ref = sps.bootstrap((np.array(values),), np.mean, n_resamples=10_000, confidence_level=0.95,
                        method="percentile", random_state=np.random.default_rng(7)).confidence_interval
    width = ref.high - ref.low
    # different random draws: the two percentile intervals agree to a few percent of their width
    assert ours["low"] == pytest.approx(ref.low, abs=0.05 * width)
    assert ours["high"] == pytest.approx(ref.high, abs=0.05 * width)
    assert ours["low"] < np.mean(values) < ours["high"]
    assert bootstrap_ci(values, seed=0) == ours  # reproducible
    assert bootstrap_ci(values, seed=1) != ours
    assert (ours["n"], ours["method"], ours["unavailable"]) == (12, "percentile", None)


def test_bootstrap_weights_are_frame_counts():
    # clip means weighted by frame counts: resampling every clip once gives the frame-weighted mean,
    # and a constant series has a zero-width interval
    values, weights = [20.0, 30.0], [1, 3]
    ci = bootstrap_ci(values, weights, resamples=2000)
    assert 20.0 <= ci["low"] <= 27.5 <= ci["high"] <= 30.0
    assert bootstrap_ci([5.0, 5.0, 5.0], [1, 2, 3])["low"] == bootstrap_ci([5.0, 5.0, 5.0], [1, 2, 3])["high"] == 5.0
    # a heavy clip pulls the interval towards its value
    values, weights = [20.0, 30.0, 40.0, 50.0], [1, 1, 1, 9]
    weighted, plain = bootstrap_ci(values, weights), bootstrap_ci(values)
    assert weighted["low"] >= plain["low"] and weighted["high"] > plain["high"]


def test_bootstrap_unavailable_cases():
    assert "at least 2" in bootstrap_ci([25.0])["unavailable"] and bootstrap_ci([25.0])["low"] is None
    assert "not finite" in bootstrap_ci([25.0, math.inf])["unavailable"]
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], confidence=1.5)


def test_wilcoxon_exact_p_and_its_floor():
    ours = {f"{i:04d}": 26.0 + 0.1 * i for i in range(6)}
    theirs = {c: v - 0.5 - 0.01 * i for i, (c, v) in enumerate(ours.items())}
    result = paired_test(ours, theirs, "wilcoxon")
    # all six differences positive: exact two-sided p = 2 / 2^6
    assert result["n"] == 6 and result["p"] == pytest.approx(2 / 64)
    assert result["min_p"] == pytest.approx(2 / 64) and significance_mark(result["p"], 0.05) == "†"
    two = paired_test({"a": 2.0, "b": 3.0}, {"a": 1.0, "b": 1.0})
    assert two["n"] == 2 and two["p"] == pytest.approx(0.5) and two["min_p"] == 0.5
    assert significance_mark(two["p"], 0.05) == ""
    assert wilcoxon_min_p(5) == pytest.approx(0.0625) and wilcoxon_min_p(0) == 1.0


def test_paired_t_test_matches_hand_computation():
    ours = {"a": 26.1, "b": 25.4, "c": 27.0, "d": 24.8}
    theirs = {"a": 25.6, "b": 25.3, "c": 26.1, "d": 24.9, "e": 30.0}  # "e" has no partner: ignored
    d = np.array([ours[c] - theirs[c] for c in "abcd"])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    p = 2 * sps.t.sf(abs(t), df=len(d) - 1)
    result = paired_test(ours, theirs, "ttest")
    assert result["n"] == 4 and result["statistic"] == pytest.approx(t) and result["p"] == pytest.approx(p)
    assert result["min_p"] is None


def test_paired_test_unavailable_cases():
    assert "at least 2" in paired_test({"a": 1.0}, {"a": 0.0})["unavailable"]
    assert "zero" in paired_test({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0})["unavailable"]
    assert "variance" in paired_test({"a": 2.0, "b": 3.0}, {"a": 1.0, "b": 2.0}, "ttest")["unavailable"]
    inf = paired_test({"a": math.inf, "b": 2.0, "c": 1.0}, {"a": 1.0, "b": 1.0, "c": 0.0})
    assert inf["n"] == 2  # the non-finite clip is left out, not counted
    assert paired_test({"a": 1.0}, {"a": 0.0})["p"] is None and significance_mark(None, 0.05) == ""
    with pytest.raises(ValueError, match="unknown"):
        paired_test({}, {}, "sign")


def test_clip_values_average_seeds_and_keep_weights():
    seed0 = {"clips": {"0000": {"frames": 3, "psnr": 24.0, "warp_pairs": 2, "warp_error": 0.02},
                       "0001": {"frames": 5, "psnr": "inf", "warp_pairs": 4, "warp_error": None}}}
    seed1 = {"clips": {"0000": {"frames": 3, "psnr": 26.0, "warp_pairs": 2, "warp_error": 0.04},
                       "0001": {"frames": 5, "psnr": 30.0, "warp_pairs": 4, "warp_error": None}}}
    psnr = clip_values([seed0, seed1], "psnr")
    assert psnr["0000"] == (25.0, 3) and psnr["0001"] == (math.inf, 5)
    warp = clip_values([seed0, seed1], "warp_error", "warp_pairs")
    assert list(warp) == ["0000"] and warp["0000"] == (pytest.approx(0.03), 2)
