"""Uncertainty for the tables: spread over seeds, bootstrap intervals over clips, paired tests.

Three different questions, three tools:
- Seeds (training randomness): mean and sample standard deviation (n - 1) of the dataset-level
  metric over the trained seeds; no std with a single seed.
- Test clips (which scenes happen to be in the test set): a percentile bootstrap over clips. A
  resample draws n clips with replacement and computes the same frame-weighted mean the table
  shows (each clip's mean weighted by its frame or pair count), from a generator with a fixed seed,
  so the interval is reproducible. Clips, not frames, are resampled: frames of one clip are strongly
  correlated, and resampling them would understate the uncertainty.
- Is the reference method better than another row? A paired test over the clips both were scored
  on (each clip's value averaged over seeds): the two-sided Wilcoxon signed-rank test by default
  (no normality assumption; exact for small n, zero differences dropped), or the paired t-test.
  With few clips the exact Wilcoxon test cannot reach small p at all (its smallest two-sided p is
  2 / 2^n, e.g. 0.5 for two clips), so n and that floor are reported with every p.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import mean, stdev

import numpy as np

TESTS = ("wilcoxon", "ttest")
MARK = "†"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def seed_stats(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std over seeds (None values skipped); std is None with fewer than two values."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return mean(values), (stdev(values) if len(values) > 1 else None)


def clip_values(summaries: list[dict], metric: str, weight_key: str = "frames") -> dict[str, tuple[float, int]]:
    """{clip: (metric averaged over seeds, weight)} from `evaluate` summaries, one per seed.

    A clip's weight is its `weight_key` count (frames, or pairs for the warping error); seeds where a
    clip has no value are skipped, clips with no value in any seed are left out.
    """
    out: dict[str, tuple[float, int]] = {}
    clips = dict.fromkeys(c for s in summaries for c in s.get("clips", {}))
    for clip in clips:
        values, weights = [], []
        for s in summaries:
            item = s.get("clips", {}).get(clip, {})
            value = item.get(metric)
            if value is None:
                continue
            values.append(math.inf if value == "inf" else float(value))
            weights.append(int(item.get(weight_key, 1)))
        if values:
            out[clip] = (float(np.mean(values)), max(weights))
    return out


def bootstrap_ci(
    values: list[float],
    weights: list[float] | None = None,
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Percentile bootstrap interval of the weighted mean of `values` (one value per clip).

    Returns {"low", "high", "n", "resamples", "confidence", "method": "percentile", "unavailable"};
    low/high are None and "unavailable" holds the reason when fewer than two finite values exist.
    """
    result = {"low": None, "high": None, "n": len(values), "resamples": resamples, "confidence": confidence,
              "method": "percentile", "unavailable": None}
    if not 0 < confidence < 1 or resamples < 1:
        raise ValueError(f"confidence must be in (0, 1) and resamples >= 1, got {confidence}, {resamples}")
    if len(values) < 2:
        result["unavailable"] = f"needs at least 2 test clips to resample, has {len(values)}"
        return result
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        result["unavailable"] = "a clip's value is not finite (e.g. PSNR of a clip restored exactly)"
        return result
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != x.shape or (w <= 0).any():
        raise ValueError(f"weights must be positive, one per value: {weights}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(resamples, len(x)))
    stats = (x[idx] * w[idx]).sum(axis=1) / w[idx].sum(axis=1)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(stats, [tail, 100.0 - tail])
    result["low"], result["high"] = float(low), float(high)
    return result


def wilcoxon_min_p(n: int) -> float:
    """Smallest two-sided p the exact Wilcoxon signed-rank test can give with n non-zero differences."""
    return min(1.0, 2.0 / 2.0**n) if n > 0 else 1.0


def paired_test(ours: Mapping[str, float], theirs: Mapping[str, float], test: str = "wilcoxon") -> dict:
    """Two-sided paired test of `ours` vs `theirs` over the clips both have (finite values only).

    Returns {"test", "n" (clips paired), "p", "statistic", "min_p" (Wilcoxon's floor for this n, else
    None), "unavailable" (reason, with p None)}.
    """
    from scipy import stats as sps

    if test not in TESTS:
        raise ValueError(f"unknown paired test '{test}' (choose from {TESTS})")
    clips = [c for c in ours if c in theirs and _finite(ours[c]) and _finite(theirs[c])]
    d = np.array([ours[c] - theirs[c] for c in clips], dtype=np.float64)
    result = {"test": test, "n": len(clips), "p": None, "statistic": None, "min_p": None, "unavailable": None}
    if len(clips) < 2:
        result["unavailable"] = f"needs at least 2 clips scored by both methods, has {len(clips)}"
        return result
    if not d.any():
        result["unavailable"] = "every paired difference is zero"
        return result
    if test == "wilcoxon":
        nonzero = int(np.count_nonzero(d))
        result["min_p"] = wilcoxon_min_p(nonzero)
        res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    else:
        if np.std(d) == 0.0:
            result["unavailable"] = "the paired differences have zero variance (t undefined)"
            return result
        res = sps.ttest_rel(np.array([ours[c] for c in clips]), np.array([theirs[c] for c in clips]))
    result["p"], result["statistic"] = float(res.pvalue), float(res.statistic)
    return result


def significance_mark(p: float | None, alpha: float) -> str:
    return MARK if p is not None and p < alpha else ""
