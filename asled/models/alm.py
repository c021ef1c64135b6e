"""ALM: the reference matching module of AsLeD-Net.

For every blurry feature vector, find the K most similar (cosine) reference feature vectors anywhere in
the reference frame of the same time step, average them with softmax-over-similarity weights, and fuse
the result with the blurry feature by a 1x1 conv. The search is global and exact; only the query rows
are processed in chunks so that the [queries, keys] similarity matrix never exceeds
`chunk_size x H*W` entries (at 112x192 a full matrix would be 21,504^2 floats, 1.8 GB per frame).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from asled.models.blocks import conv1x1


def global_topk_aggregate(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    k: int = 3,
    chunk_size: int = 4096,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Softmax-weighted sum of the top-k `value` vectors by cosine similarity of `query` to `key`.

    query `[N, C, H, W]`; key `[N, C, Hk, Wk]`; value `[N, Cv, Hk, Wk]`; returns `[N, Cv, H, W]`.
    Each batch item matches only its own keys.
    """
    n, c, h, w = query.shape
    if key.shape[:2] != (n, c) or value.shape[0] != n or value.shape[-2:] != key.shape[-2:]:
        raise ValueError(f"query {tuple(query.shape)}, key {tuple(key.shape)}, value {tuple(value.shape)} do not match")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
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
            # Recompute only the k chosen similarities with gradient: same values, same gradients as
            # differentiating through topk, at O(c * k) memory.
            sim = (qc.unsqueeze(1) * kn[b][idx]).sum(-1)  # [c, k]
            weights = torch.softmax(sim / temperature, dim=1)
            rows.append((weights.unsqueeze(-1) * v[b][idx]).sum(1))  # [c, Cv]
        out.append(torch.cat(rows, dim=0))
    return torch.stack(out).transpose(1, 2).reshape(n, value.shape[1], h, w)


class ALM(nn.Module):
    """`forward(f_blur, f_ref) -> F^ALM`: top-K matched reference features fused with the blurry ones."""

    def __init__(self, channels: int = 64, top_k: int = 3, chunk_size: int = 4096, temperature: float = 1.0):
        super().__init__()
        self.top_k = top_k
        self.chunk_size = chunk_size
        self.temperature = temperature
        self.fuse = conv1x1(2 * channels, channels)

    def forward(self, f_blur: torch.Tensor, f_ref: torch.Tensor) -> torch.Tensor:
        matched = global_topk_aggregate(f_blur, f_ref, f_ref, self.top_k, self.chunk_size, self.temperature)
        return self.fuse(torch.cat([f_blur, matched], dim=1))
