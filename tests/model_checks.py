"""One training step of a registered model at the acceptance shape, shared by the model tests."""

from __future__ import annotations

import torch

from asled.models import build_model

ACCEPTANCE_SHAPE = (1, 7, 3, 64, 64)


def backward_at_acceptance_shape(name: str, loss=lambda out: out.mean()) -> torch.nn.Module:
    """Build `name` (seed 0), run forward + backward on CPU at [1, 7, 3, 64, 64]; return the model with
    its gradients. Checks the output's shape and finiteness; callers check the gradients they care about."""
    torch.manual_seed(0)
    model = build_model(name)
    blur, ref = torch.rand(*ACCEPTANCE_SHAPE), torch.rand(*ACCEPTANCE_SHAPE)
    out = model(blur, ref)
    assert out.shape == blur.shape
    assert torch.isfinite(out).all()
    loss(out).backward()
    return model
