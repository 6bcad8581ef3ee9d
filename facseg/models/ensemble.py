"""Several trained nets as one: their weighted mean softmax probability."""

from __future__ import annotations

import torch
from torch import nn


class Ensemble(nn.Module):
    """`forward`: log of the weighted mean of the members' softmax probabilities (logits whose softmax is that mean).

    `member_logits` and `combine` split it in two, so that an evaluator can warp each member's logits to the photo
    exactly as it warps a single net's before averaging: an ensemble of a net with itself then scores as the net.
    """

    def __init__(self, nets: list[nn.Module], weights: list[float] | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        weights = torch.tensor(weights if weights is not None else [1.0] * len(nets), dtype=torch.float32)
        if len(weights) != len(nets) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights={weights.tolist()}: expected {len(nets)} non-negative weights, not all zero")
        self.register_buffer("weights", weights / weights.sum())

    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        """M x N x C x H x W: every member's logits."""
        return torch.stack([net(images) for net in self.nets])

    def combine(self, member_logits: torch.Tensor) -> torch.Tensor:
        """M x N x C x ... member logits -> N x C x ...: the log of their weighted mean probability."""
        probs = member_logits.float().softmax(2)
        mean = (self.weights.view(-1, *[1] * (probs.dim() - 1)) * probs).sum(0)
        return mean.clamp_min(1e-12).log()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.combine(self.member_logits(images))
