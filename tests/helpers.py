"""Test-only pieces that runs load through their config (`+callbacks.interrupt._target_=tests.helpers.Interrupt`)."""

import os
from pathlib import Path

import pytorch_lightning as pl


class Interrupt(pl.Callback):
    """Send `signal` to this very process after training batch `step` (global), once: a marker file remembers.
    `group`: to its whole process group (its DataLoader workers too), as SLURM and `timeout` do."""

    def __init__(self, step: int, signal: int, marker: str, group: bool = False) -> None:
        self.step, self.signal, self.marker, self.group = step, signal, Path(marker), group

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(f"interrupted at epoch {trainer.current_epoch}, batch {batch_idx}\n")
            if self.group:
                os.killpg(os.getpgrp(), self.signal)
            else:
                os.kill(os.getpid(), self.signal)
