"""Tiled inference: restore frames larger than a tile, piece by piece, with seamless blending.

`tiled_forward(model, blur, ref, tile, overlap)` cuts H and W into overlapping tiles of at most
`tile x tile` pixels (all T frames of a tile together, blurry and reference cut alike), runs the model
on each tile and blends the outputs with a partition of unity, so peak memory is that of one tile,
not of the whole frame.

Tile placement (per axis of length L, tile t = min(tile, L)): n = ceil((L - overlap) / (t - overlap))
tiles whose starts are spread evenly over [0, L - t], so neighbours overlap by at least `overlap`
pixels and every pixel is covered.

Blending weights (per axis; the 2-D weight of a tile is the outer product, so weights sum to 1 in 2-D
too): in each overlap region between neighbouring tiles, a linear ramp of `overlap - 2*(overlap//4)`
pixels, centred in that region, hands over from the left (upper) tile to the right (lower) one. Each
tile's weight is exactly 0 within `overlap // 4` pixels of an edge it shares with a neighbour, so the
pixels a tile computes without full context (next to its cut edges) never reach the output: a model
whose receptive field reaches at most `overlap // 4` pixels from each output gives the untiled result
up to float rounding. Frame borders are not cut edges: there the tile sees the same padding as the
untiled model. Models with a global receptive field (AsLeD-Net's global matching, recurrent flow
propagation) see only their tile; tiling them is an approximation whose seams the ramps hide.

A tile at least as large as the frame (or `tile=None`) calls the model once on the whole clip: the
result is bitwise the untiled one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_tiling(tile: int | None, overlap: int) -> None:
    if tile is None:
        return
    if int(tile) < 1 or int(overlap) < 0:
        raise ValueError(f"tile must be positive and overlap non-negative, got tile {tile}, overlap {overlap}")
    if int(tile) < 2 * int(overlap) + 2:
        raise ValueError(f"tile ({tile}) must be at least 2 * overlap + 2 ({2 * int(overlap) + 2}) so that blending ramps do not collide")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles of one axis: evenly spread, neighbours overlap by >= `overlap` pixels."""
    if tile >= length:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    return [(i * (length - tile)) // (n - 1) for i in range(n)]


def axis_weights(length: int, tile: int, overlap: int) -> list[tuple[int, torch.Tensor]]:
    """`[(start, weight)]` for the tiles of one axis: weight (float64, `min(tile, length)` long) is the
    tile's share of each pixel it covers; over all tiles the shares of every pixel sum to 1."""
    t = min(tile, length)
    starts = tile_starts(length, t, overlap)
    ramp_len = overlap - 2 * (overlap // 4)
    # per boundary between tile i and i+1: the share of tile i+1 across the frame (0 before the ramp, 1 after)
    handovers = []
    for left, right in zip(starts, starts[1:]):
        region = left + t - right  # overlap of the two tiles, >= overlap
        r0 = right + (region - ramp_len) // 2
        x = torch.arange(length, dtype=torch.float64)
        share = ((x - r0 + 0.5) / ramp_len).clamp(0, 1) if ramp_len > 0 else (x >= r0).double()
        handovers.append(share)
    out = []
    for i, s in enumerate(starts):
        weight = torch.ones(length, dtype=torch.float64)
        if i > 0:
            weight = weight * handovers[i - 1]
        if i < len(starts) - 1:
            weight = weight * (1 - handovers[i])
        if weight[:s].any() or weight[s + t :].any():
            raise AssertionError(f"blending ramp leaves tile {i} (length {length}, tile {t}, overlap {overlap})")
        out.append((s, weight[s : s + t]))
    return out


def tiled_forward(
    model: Model,
    blur: torch.Tensor,
    ref: torch.Tensor,
    tile: int | None,
    overlap: int = 32,
) -> torch.Tensor:
    """Run `model(blur, ref)` on `[B, T, C, H, W]` clips tile by tile and blend; returns `[B, T, C, H, W]`.

    `tile=None` or a tile covering the frame: one call on the whole clip (bitwise the untiled result).
    """
    h, w = blur.shape[-2:]
    if tile is None or (tile >= h and tile >= w):
        return model(blur, ref)
    check_tiling(tile, overlap)
    if ref is not None and ref.shape[-2:] != (h, w):
        raise ValueError(f"tiling needs reference and blurry frames of one size, got {tuple(ref.shape)} and {tuple(blur.shape)}")
    rows = axis_weights(h, tile, overlap)
    cols = axis_weights(w, tile, overlap)
    out = None
    for y0, wy in rows:
        for x0, wx in cols:
            ys, xs = slice(y0, y0 + len(wy)), slice(x0, x0 + len(wx))
            piece = model(blur[..., ys, xs].contiguous(), None if ref is None else ref[..., ys, xs].contiguous())
            if piece.shape[-2:] != (len(wy), len(wx)):
                raise ValueError(f"model returned {tuple(piece.shape)} for a tile of {len(wy)}x{len(wx)}")
            if out is None:
                out = torch.zeros(*piece.shape[:-2], h, w, dtype=piece.dtype, device=piece.device)
            weight = (wy[:, None] * wx[None, :]).to(device=piece.device, dtype=piece.dtype)
            out[..., ys, xs] += piece * weight
    return out
