"""ALM matching that scales: windowed mode against global and a brute-force reference, the chunked
global search against all pairs at several sizes, and the `asled bench alm` report."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from asled.bench import bench_alm, naive_topk_aggregate
from asled.cli import main
from asled.models.alm import ALM, global_topk_aggregate, window_topk_aggregate


def randn(*shape, seed=0, requires_grad=False):
    t = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    return t.requires_grad_(requires_grad)


def brute_force_window(query, key, value, k, window):
    """Per position, the candidate keys inside the window (and the frame), one position at a time."""
    n, _, h, w = query.shape
    r = window // 2
    q = F.normalize(query, dim=1)
    kn = F.normalize(key, dim=1)
    out = torch.zeros(n, value.shape[1], h, w)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                cand = [(yy, xx) for yy in range(max(0, y - r), min(h, y + r + 1)) for xx in range(max(0, x - r), min(w, x + r + 1))]
                keys = torch.stack([kn[b, :, yy, xx] for yy, xx in cand])  # [M, C]
                vals = torch.stack([value[b, :, yy, xx] for yy, xx in cand])
                sim = keys @ q[b, :, y, x]
                top, idx = sim.topk(min(k, len(cand)))
                out[b, :, y, x] = (torch.softmax(top, 0).unsqueeze(1) * vals[idx]).sum(0)
    return out


@pytest.mark.parametrize("size", [(6, 9), (7, 7), (1, 5), (12, 4)])
@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_window_covering_the_frame_equals_global(size, k, chunk_size):
    h, w = size
    query, key, value = randn(2, 8, h, w, seed=1), randn(2, 8, h, w, seed=2), randn(2, 4, h, w, seed=3)
    glob = global_topk_aggregate(query, key, value, k=k, chunk_size=chunk_size)
    for window in (2 * max(h, w) - 1, 2 * max(h, w) + 11):
        win = window_topk_aggregate(query, key, value, k=k, window=window, chunk_size=chunk_size)
        torch.testing.assert_close(win, glob, rtol=0, atol=1e-6)


def test_window_covering_the_frame_has_global_gradients():
    tensors = [randn(1, 8, 5, 6, seed=s, requires_grad=True) for s in range(3)]
    glob = global_topk_aggregate(*tensors, k=3, chunk_size=4)
    win = window_topk_aggregate(*tensors, k=3, window=11, chunk_size=4)
    grads_g = torch.autograd.grad(glob.square().sum(), tensors)
    grads_w = torch.autograd.grad(win.square().sum(), tensors)
    for a, b in zip(grads_w, grads_g):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("window", [1, 3, 5])
@pytest.mark.parametrize("k", [1, 3, 9, 30])  # k above the corner's candidate count: masked, not padded
def test_small_window_equals_brute_force(window, k):
    query, key, value = randn(2, 6, 7, 9, seed=4), randn(2, 6, 7, 9, seed=5), randn(2, 3, 7, 9, seed=6)
    got = window_topk_aggregate(query, key, value, k=k, window=window, chunk_size=10)
    torch.testing.assert_close(got, brute_force_window(query, key, value, k, window), rtol=1e-5, atol=1e-6)


def test_window_of_one_returns_the_value_at_the_same_position():
    query, value = randn(1, 8, 5, 6, seed=7), randn(1, 3, 5, 6, seed=8)
    assert torch.equal(window_topk_aggregate(query, randn(1, 8, 5, 6), value, k=3, window=1), value)


@pytest.mark.parametrize("qsize,ksize", [((16, 16), (16, 16)), ((23, 31), (23, 31)), ((9, 40), (17, 5)), ((32, 32), (32, 32))])
@pytest.mark.parametrize("chunk_size", [33, 256, 100_000])
def test_chunked_global_equals_all_pairs_at_larger_sizes(qsize, ksize, chunk_size):
    query = randn(1, 16, *qsize, seed=9)
    key = randn(1, 16, *ksize, seed=10)
    value = randn(1, 5, *ksize, seed=11)
    got = global_topk_aggregate(query, key, value, k=3, chunk_size=chunk_size)
    torch.testing.assert_close(got, naive_topk_aggregate(query, key, value, 3), rtol=1e-6, atol=1e-6)


def test_alm_default_is_global_and_window_mode_adds_no_parameters():
    torch.manual_seed(0)
    glob = ALM(16)
    assert glob.mode == "global"
    win = ALM(16, mode="window", window=31)
    assert sum(p.numel() for p in win.parameters()) == sum(p.numel() for p in glob.parameters())
    assert win.state_dict().keys() == glob.state_dict().keys()
    win.load_state_dict(glob.state_dict())
    f_blur, f_ref = randn(2, 16, 9, 13, seed=12), randn(2, 16, 9, 13, seed=13)
    torch.testing.assert_close(win(f_blur, f_ref), glob(f_blur, f_ref), rtol=0, atol=1e-6)


def test_alm_rejects_bad_settings():
    with pytest.raises(ValueError, match="mode"):
        ALM(8, mode="local")
    with pytest.raises(ValueError, match="odd"):
        ALM(8, mode="window", window=4)
    with pytest.raises(ValueError, match="same size"):
        window_topk_aggregate(randn(1, 4, 5, 5), randn(1, 4, 6, 5), randn(1, 2, 6, 5))


def test_bench_alm_reports_measurements_and_skips_what_does_not_fit():
    result = bench_alm(sizes=(8, 24), channels=8, chunk_size=50, device="cpu", repeats=1, window=5,
                       memory_limit_gib=24 * 24 * 24 * 24 * 4 / 1024**3 - 1e-9)
    small, large = result["cases"]
    assert small["max_abs_diff_chunked_vs_naive"] < 1e-5
    assert "naive_over_chunked_time" in small["ratios"]
    assert large["naive"]["skipped"].startswith("would need 0.0 GiB")
    assert large["naive"]["needs_bytes_at_least"] == (24 * 24) ** 2 * 4
    assert large["max_abs_diff_chunked_vs_naive"] is None
    for case in result["cases"]:
        for name in ("chunked", "window"):
            assert case[name]["seconds_median"] > 0
            assert case[name]["peak_extra_bytes"] is None or case[name]["peak_extra_bytes"] >= 0
    json.dumps(result)


def test_bench_alm_cli_prints_json(capsys):
    assert main(["bench", "alm", "--sizes", "8", "--channels", "4", "--repeats", "1", "--device", "cpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"][0]["size"] == 8
    assert main(["bench", "alm", "--sizes", "8", "--window", "4", "--device", "cpu"]) == 2
