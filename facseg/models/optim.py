"""Learning-rate schedules that need the run's length, for conf/scheduler (called with the optimizer and the run's
total optimizer steps)."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05
) -> torch.optim.lr_scheduler.LRScheduler:
    """A linear warm-up from lr / warmup to lr over the first `warmup_fraction` of the steps, then a cosine to 0.

    PyTorch's own schedulers, chained: step s < warmup runs at lr (s + 1) / warmup, step warmup + t at
    lr (1 + cos(pi t / (total - warmup))) / 2.
    """
    if not 0 <= warmup_fraction < 1:
        raise ValueError(f"scheduler.warmup_fraction={warmup_fraction}: expected a fraction in [0, 1)")
    warmup = max(1, int(total_steps * warmup_fraction))
    return SequentialLR(
        optimizer,
        [
            LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup - 1),
            CosineAnnealingLR(optimizer, T_max=max(1, total_steps - warmup)),
        ],
        milestones=[warmup],
    )
