"""Several predictions as one: an ensemble of nets, and flip test-time augmentation as an ensemble of two views."""

from __future__ import annotations

import torch
from torch import nn


def normalised_weights(weights: list[float] | None, members: int) -> torch.Tensor:
    """An ensemble's weights (None: equal) as a tensor summing to 1; raises unless there is one non-negative weight
    per member, not all zero."""
    weights = torch.tensor(weights if weights is not None else [1.0] * members, dtype=torch.float32)
    if len(weights) != members or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights={weights.tolist()}: expected {members} non-negative weights, not all zero")
    return weights / weights.sum()


def combine(member_logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """M x N x C x ... member logits -> N x C x ...: the log of their weighted mean probability (weights sum to 1)."""
    probs = member_logits.float().softmax(2)
    mean = (weights.to(probs.device).view(-1, *[1] * (probs.dim() - 1)) * probs).sum(0)
    return mean.clamp_min(1e-12).log()


def mirror_prediction(logits: torch.Tensor, class_mirror: torch.Tensor) -> torch.Tensor:
    """N x C x H x W logits of a mirrored image -> those of the image: flipped back, left/right classes swapped."""
    return logits.flip(-1)[:, class_mirror.to(logits.device)]


class Ensemble(nn.Module):
    """`forward`: log of the weighted mean of the members' softmax probabilities (logits whose softmax is that mean).

    `member_logits` gives each member's own, so that an evaluator can warp each member's logits to the photo
    exactly as it warps a single net's before averaging: an ensemble of a net with itself then scores as the net.
    """

    def __init__(self, nets: list[nn.Module], weights: list[float] | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        self.register_buffer("weights", normalised_weights(weights, len(nets)))

    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        """M x N x C x H x W: every member's logits."""
        return torch.stack([net(images) for net in self.nets])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return combine(self.member_logits(images), self.weights)


class Mirrored(nn.Module):
    """A net that sees the mirrored image and answers for the image itself (flip test-time augmentation's view)."""

    def __init__(self, net: nn.Module, class_mirror: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("class_mirror", class_mirror)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return mirror_prediction(self.net(images.flip(-1)), self.class_mirror)


def fit_weights(target_log_probs: torch.Tensor, steps: int = 100) -> list[float]:
    """Ensemble weights fitted to held-out pixels: M x P, each member's log probability of each pixel's true class
    -> the M weights (non-negative, summing to 1) whose weighted mean probability maximises the pixels' likelihood.

    The likelihood of a mixture is concave in its weights, so the optimum is unique; the weights are the softmax
    of free parameters, fitted with L-BFGS. Fit on validation, never on test.
    """
    logits = torch.zeros(len(target_log_probs), dtype=torch.float64, requires_grad=True)
    log_probs = target_log_probs.double()
    optimizer = torch.optim.LBFGS([logits], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = -torch.logsumexp(logits.log_softmax(0)[:, None] + log_probs, 0).mean()
        loss.backward()
        return loss

    optimizer.step(closure)
    return logits.detach().softmax(0).tolist()
