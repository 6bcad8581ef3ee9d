"""Lightning callbacks that make runs survive interruption, and count their training time across it."""

from __future__ import annotations

import logging
import signal
import threading
import time
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
    - USR2, which submitit (hydra/launcher=slurm, submitit_local) sends `signal_delay_s` before a job's time limit
      and answers by requeuing the job at once (losing the epoch in progress): taken over while fitting, it stops
      training after the current batch as SIGTERM does, `last.ckpt` is saved there, and only then does submitit's
      own handler requeue the job, which resumes from it.
    - The global torch RNG (dropout) is saved and restored; the data loaders use their own generators.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self._skip_batches = 0
        self._requeue: Any = None  # the USR2 handler found at fit start (submitit's), called once last.ckpt is saved
        self._pending: tuple | None = None  # the USR2 received, waiting for the save

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        previous = signal.getsignal(signal.SIGUSR2)
        if not callable(previous) or threading.current_thread() is not threading.main_thread():
            return  # no handler of a launcher's to defer (USR2 keeps its default), or not allowed to set one

        def stop_then_requeue(signum: int, frame: Any) -> None:
            self._pending = (signum, frame)
            trainer._signal_connector.received_sigterm = True  # private Lightning API (pinned): stop as on SIGTERM

        self._requeue = previous
        signal.signal(signal.SIGUSR2, stop_then_requeue)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if trainer.received_sigterm and trainer.state.fn == TrainerFn.FITTING:
            path = self.dirpath / "last.ckpt"
            trainer.save_checkpoint(path)
            log.warning(
                "%s: saved %s at epoch %d, step %d; rerun the same command to resume",
                "USR2" if self._pending else "SIGTERM",
                path,
                trainer.current_epoch,
                trainer.global_step,
            )
        if self._pending is not None:  # submitit's handler: requeues the job (and exits this process)
            pending, self._pending = self._pending, None
            self._requeue(*pending)

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


class TrainingClock(pl.Callback):
    """A run's seconds of training over every session that trained it: each checkpoint holds the seconds up to it, and
    a resumed run counts on from there (what a killed session did after its last checkpoint is done again, and counted
    once). `begin()` as fitting starts; `seconds()` after it."""

    def __init__(self) -> None:
        self.earlier, self.start = 0.0, time.perf_counter()

    def begin(self) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.earlier + time.perf_counter() - self.start

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint["training_seconds"] = self.seconds()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if trainer.state.fn == TrainerFn.FITTING:  # not the test's load of the selected weights
            self.earlier = float(checkpoint.get("training_seconds", 0.0))
