"""Training losses."""

from __future__ import annotations

import torch


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss: mean over all elements of sqrt((pred - target)^2 + eps^2).

    The paper writes sqrt(||x - y||^2 + eps^2) with eps = 1e-3. We read it elementwise, as every
    public implementation does (BasicSR's `CharbonnierLoss`, EDVR, BasicVSR, DSTNet): the penalty is
    applied to each pixel/channel difference and averaged, a smooth L1. The literal whole-tensor
    norm reading would make the loss scale with the crop and batch size.
    """
    if pred.shape != target.shape:
        raise ValueError(f"charbonnier: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    diff = pred - target
    return torch.sqrt(diff * diff + eps * eps).mean()
