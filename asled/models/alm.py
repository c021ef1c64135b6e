"""ALM: the reference matching module of AsLeD-Net.

For every blurry feature vector, find the K most similar (cosine) reference feature vectors anywhere in
the reference frame of the same time step, average them with softmax-over-similarity weights, and fuse
the result with the blurry feature by a 1x1 conv. The search is global and exact; only the query rows
are processed in chunks so that the [queries, keys] similarity matrix never exceeds
`chunk_size x H*W` entries (at 112x192 a full matrix would be 21,504^2 floats, 1.8 GB per frame).

Two matching modes (`ALM(..., mode=...)`):

* ``"global"`` (default, the paper's module): every reference position is a candidate. Exact; time
  grows with (H*W)^2 and peak memory with `chunk_size * H*W` (the chunked rows of the similarity matrix).
* ``"window"``: an approximation for large frames. A blurry position at (y, x) considers only the
  reference positions inside the `window x window` square (window = 2r+1) centred on (y, x); positions
  outside the frame are not candidates (they are masked, not zero-padded). Time and memory grow with
  H*W*window^2, not (H*W)^2. With a window that covers the whole frame (window >= 2*max(H, W) - 1) every
  position is a candidate and the result equals global mode. Blurry and reference maps must have the
  same size (positions correspond). The neighbours are found exactly as in global mode (same cosine
  similarity, same top-k, same softmax and the same gradients); only the candidate set differs.

Both modes have no parameters of their own, so the mode changes neither the parameter count nor the
checkpoint layout of ALM.

Softmax temperature (`temperature`, `learnable_temperature`): the K kept cosine similarities lie in
[-1, 1], so with T = 1 their softmax weights are nearly uniform (the top weight of K = 3 can never
exceed e / (e + 2/e) ~ 0.79, and at random-init features it is ~1/3). The paper's prose only says
"a softmax over their similarities". `temperature` fixes T (default 1.0, the literal reading);
`learnable_temperature=True` learns log T, starting from log(`temperature`) -- one extra parameter
(`ALM.log_temperature`), present only then. Measured comparison: docs/model_card_asled_net.md,
"Reference use and ALM temperature (measured)".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv1x1

MODES = ("global", "window")


def _check(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, chunk_size: int) -> None:
    n, c = query.shape[:2]
    if key.shape[:2] != (n, c) or value.shape[0] != n or value.shape[-2:] != key.shape[-2:]:
        raise ValueError(f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)} do not match")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")


def _aggregate(
    qc: torch.Tensor, kn: torch.Tensor, v: torch.Tensor, idx: torch.Tensor, temperature: float | torch.Tensor,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax-weighted sum of `v[idx]` for query rows `qc` [c, C]; `idx` [c, k] indexes rows of kn / v.

    Recomputes only the k chosen similarities with gradient: same values, same gradients as
    differentiating through topk, at O(c * k) memory. `valid` [c, k] masks candidates that do not exist.
    """
    sim = (qc.unsqueeze(1) * kn[idx]).sum(-1)  # [c, k]
    if valid is not None:
        sim = sim.masked_fill(~valid, float("-inf"))
    weights = torch.softmax(sim / temperature, dim=1)
    return (weights.unsqueeze(-1) * v[idx]).sum(1)  # [c, Cv]


def global_topk_aggregate(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    k: int = 3,
    chunk_size: int = 4096,
    temperature: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Softmax-weighted sum of the top-k `value` vectors by cosine similarity of `query` to `key`.

    query `[N, C, H, W]`; key `[N, C, Hk, Wk]`; value `[N, Cv, Hk, Wk]`; returns `[N, Cv, H, W]`.
    Each batch item matches only its own keys.
    """
    _check(query, key, value, chunk_size)
    n, c, h, w = query.shape
    q = F.normalize(query.flatten(2), dim=1).transpose(1, 2)  # [N, Nq, C]
    kn = F.normalize(key.flatten(2), dim=1).transpose(1, 2)  # [N, Nk, C]
    v = value.flatten(2).transpose(1, 2)  # [N, Nk, Cv]
    k = min(k, kn.shape[1])
    out = []
    for b in range(n):
        rows = []
        for start in range(0, q.shape[1], chunk_size):
            qc = q[b, start : start + chunk_size]  # [c, C]
            # Selecting the neighbours needs no gradient (indices are discrete); doing it under no_grad
            # keeps autograd from holding a dense [c, Nk] gradient buffer per chunk during training.
            with torch.no_grad():
                idx = (qc @ kn[b].T).topk(k, dim=1).indices  # [c, k]
            rows.append(_aggregate(qc, kn[b], v[b], idx, temperature))
        out.append(torch.cat(rows, dim=0))
    return torch.stack(out).transpose(1, 2).reshape(n, value.shape[1], h, w)


def _window_candidates(qc_map: torch.Tensor, kpad: torch.Tensor, y0: int, r: int, offsets: list[tuple[int, int]],
                       dy_t: torch.Tensor, dx_t: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-`k` keys of query rows `y0 ...` (`qc_map` `[C, rows, W]`) among the window `offsets` (also
    as tensors `dy_t`, `dx_t` on the device) of the key map `kpad` (zero-padded by `r`, `[C, H+2r, W+2r]`):
    flat key positions `[rows*W, k]` and which of them lie inside the frame."""
    _, rows, w = qc_map.shape
    h = kpad.shape[1] - 2 * r
    y1 = y0 + rows
    ys = torch.arange(y0, y1, device=qc_map.device)
    cols = torch.arange(w, device=qc_map.device)
    sim = torch.empty(len(offsets), rows, w, dtype=qc_map.dtype, device=qc_map.device)
    for o, (dy, dx) in enumerate(offsets):  # the Python list: reading the tensors would sync the device
        shifted = kpad[:, y0 + r + dy : y1 + r + dy, r + dx : r + dx + w]
        sim[o] = (qc_map * shifted).sum(0)
    ty = ys.view(1, -1, 1) + dy_t.view(-1, 1, 1)  # [O, rows, 1] key row of each candidate
    tx = cols.view(1, 1, -1) + dx_t.view(-1, 1, 1)  # [O, 1, W]
    inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)  # [O, rows, W]
    sim = sim.masked_fill(~inside, float("-inf"))
    choice = sim.flatten(1).T.topk(k, dim=1).indices  # [rows*W, k] offset numbers
    ty = (ys.view(-1, 1, 1) + dy_t[choice].view(rows, w, k))  # [rows, W, k]
    tx = (cols.view(1, -1, 1) + dx_t[choice].view(rows, w, k))
    valid = ((ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)).view(-1, k)
    # an out-of-frame pick (only when fewer than k candidates exist) points at a real
    # position and is masked out of the softmax
    idx = torch.where(valid, (ty * w + tx).view(-1, k), (ys.view(-1, 1) * w + cols.view(1, -1)).view(-1, 1))
    return idx, valid


def window_topk_aggregate(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    k: int = 3,
    window: int = 15,
    chunk_size: int = 4096,
    temperature: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """Like `global_topk_aggregate`, but query (y, x) only considers keys inside the `window x window`
    square centred on (y, x) (window = 2r+1, odd); keys outside the frame are not candidates.

    query `[N, C, H, W]`; key `[N, C, H, W]` (same size); value `[N, Cv, H, W]`; returns `[N, Cv, H, W]`.
    Query rows are processed in chunks of about `chunk_size` positions (whole image rows); the
    candidate similarities are computed offset by offset on a zero-padded key map (the same numbers as
    `F.unfold` with a (2r+1)^2 kernel, without its C*(2r+1)^2 copy), so the extra memory per chunk is
    `chunk_size * window^2` similarities.
    """
    _check(query, key, value, chunk_size)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd number (2r+1), got {window}")
    n, c, h, w = query.shape
    if key.shape[-2:] != (h, w):
        raise ValueError(f"window matching needs key and query of the same size, got {tuple(key.shape)} and {tuple(query.shape)}")
    r = min(window // 2, max(h, w) - 1)  # a larger radius adds only out-of-frame candidates
    offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    k = min(k, len(offsets), h * w)
    qmap = F.normalize(query, dim=1)  # [N, C, H, W]
    kmap = F.normalize(key, dim=1)
    q = qmap.flatten(2).transpose(1, 2)  # [N, HW, C]
    kn = kmap.flatten(2).transpose(1, 2)
    v = value.flatten(2).transpose(1, 2)
    dy_t = torch.tensor([o[0] for o in offsets], device=query.device)  # [O]
    dx_t = torch.tensor([o[1] for o in offsets], device=query.device)
    rows_per_chunk = max(1, chunk_size // w)
    out = []
    for b in range(n):
        with torch.no_grad():
            kpad = F.pad(kmap[b], (r, r, r, r))  # [C, H+2r, W+2r]; padded entries are masked below
        rows = []
        for y0 in range(0, h, rows_per_chunk):
            y1 = min(h, y0 + rows_per_chunk)
            # the choice needs no gradient (see global_topk_aggregate); the aggregation below has one
            with torch.no_grad():
                idx, valid = _window_candidates(qmap[b, :, y0:y1], kpad, y0, r, offsets, dy_t, dx_t, k)
            qc = q[b, y0 * w : y1 * w]  # [rows*W, C]
            rows.append(_aggregate(qc, kn[b], v[b], idx, temperature, None if bool(valid.all()) else valid))
        out.append(torch.cat(rows, dim=0))
    return torch.stack(out).transpose(1, 2).reshape(n, value.shape[1], h, w)


class ALM(nn.Module):
    """`forward(f_blur, f_ref) -> F^ALM`: top-K matched reference features fused with the blurry ones.

    `mode="global"` (default) searches the whole reference frame exactly; `mode="window"` searches only
    the `window x window` neighbourhood of each position (see the module docstring). `temperature` is
    the softmax temperature T; `learnable_temperature=True` learns log T from log(`temperature`).
    """

    def __init__(
        self,
        channels: int = 64,
        top_k: int = 3,
        chunk_size: int = 4096,
        temperature: float = 1.0,
        mode: str = "global",
        window: int = 15,
        learnable_temperature: bool = False,
    ):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"ALM temperature must be positive, got {temperature}")
        if mode not in MODES:
            raise ValueError(f"ALM mode must be one of {MODES}, got {mode!r}")
        if window < 1 or window % 2 == 0:
            raise ValueError(f"ALM window must be a positive odd number (2r+1), got {window}")
        self.top_k = top_k
        self.chunk_size = chunk_size
        self.learnable_temperature = bool(learnable_temperature)
        if self.learnable_temperature:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(float(temperature))))
        else:
            self._fixed_temperature = float(temperature)
        self.mode = mode
        self.window = window
        self.fuse = conv1x1(2 * channels, channels)

    @property
    def temperature(self) -> float | torch.Tensor:
        """T as used by the softmax: a float, or (learnable) the tensor exp(log T) that carries the gradient."""
        if self.learnable_temperature:
            return self.log_temperature.exp()
        return self._fixed_temperature

    def match(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        if self.mode == "window":
            return window_topk_aggregate(
                f_blur, f_ref, f_ref, self.top_k, self.window, self.chunk_size, self.temperature
            )
        return global_topk_aggregate(f_blur, f_ref, f_ref, self.top_k, self.chunk_size, self.temperature)

    def forward(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([f_blur, self.match(f_blur, f_ref)], dim=1))
