"""Loggers: a CSV logger that a resumed run appends to, and the end of a job's W&B run.

Lightning's CSVLogger deletes the metrics.csv it finds, so a run resumed after a pre-emption would keep only what
it logged after resuming. This one keeps the file and its columns; steps redone after a SIGKILL appear twice, the
later rows being the ones the final model saw.
"""

from __future__ import annotations

import csv
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter  # its _check_log_dir_exists is private (pinned)
from pytorch_lightning.loggers.logger import rank_zero_experiment


class _AppendingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = next(csv.reader(f), [])


class ResumableCSVLogger(CSVLogger):
    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


def is_wandb(logger: Any) -> bool:
    """A WandbLogger, or a logger config that builds one (told apart without importing wandb)."""
    if isinstance(logger, DictConfig):
        return str(logger.get("_target_", "")).endswith("WandbLogger")
    return type(logger).__name__ == "WandbLogger"


def finish_wandb(loggers: list) -> None:
    """Close this job's W&B run: multirun jobs share one process, and an open run would swallow the next job."""
    if any(is_wandb(logger) for logger in loggers):
        import wandb

        wandb.finish()
