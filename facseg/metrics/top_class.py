"""The arg-max over classes, as scoring and predict take it."""

from __future__ import annotations

import torch


def top_class(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The index of the largest value along `dim`, the first on ties, as max(dim).indices (but the last for a pixel
    with a NaN), faster on a CPU, whose max-with-index reduces element by element while amax is vectorised: one
    equality pass, then the largest reversed index where equal."""
    c = scores.shape[dim]
    shape = [1] * scores.dim()
    shape[dim] = c
    reversed_index = torch.arange(c, 0, -1, dtype=torch.uint8 if c < 256 else torch.int16, device=scores.device)
    found = scores == scores.amax(dim, keepdim=True)
    return (c - (found * reversed_index.view(shape)).amax(dim)).clamp_(max=c - 1).long()
