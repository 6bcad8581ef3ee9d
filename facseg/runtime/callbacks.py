"""Lightning callbacks that make runs survive interruption."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.trainer.states import TrainerFn

log = logging.getLogger(__name__)


class ExactResume(pl.Callback):
    """Resume an interrupted run so that it ends exactly as an uninterrupted one would (on the CPU).

    - SIGTERM (what SLURM sends before pre-emption): Lightning stops after the current batch; this saves
      `last.ckpt` there, and the process exits cleanly. Sent to the whole process group (SLURM, `timeout`), it also
      ends the DataLoader workers, whose death may surface first, as an error: saved all the same.
    - Mid-epoch checkpoints record how many batches of the epoch were done; on resume the epoch's sampler
      (EpochShuffle, whose order depends on seed and epoch only) skips exactly those.
    - The global torch RNG (dropout) is saved and restored; the data loaders use their own generators.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self._skip_batches = 0

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.received_sigterm and trainer.state.fn == TrainerFn.FITTING:
            path = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(path)
            log.warning(
                "SIGTERM: saved %s at epoch %d, step %d; rerun the same command to resume",
                path,
                trainer.current_epoch,
                trainer.global_step,
            )

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed  # private Lightning API (pinned)
        mid_epoch = 0 < done < trainer.num_training_batches
        checkpoint["exact_resume"] = {"torch_rng": torch.get_rng_state(), "batches_done": done if mid_epoch else 0}

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        state: dict[str, Any] | None = checkpoint.get("exact_resume")
        if state is not None:
            torch.set_rng_state(state["torch_rng"])
            self._skip_batches = state["batches_done"]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Not on_train_epoch_start: Lightning does not call it for an epoch it resumes in the middle.
        if self._skip_batches:
            loader = trainer.train_dataloader
            loader.sampler.skip(self._skip_batches * loader.batch_size)
            self._skip_batches = 0
