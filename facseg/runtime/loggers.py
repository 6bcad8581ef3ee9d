"""Loggers: a CSV logger that a resumed run appends to, a W&B logger that is never why a run fails, and the end of
a job's W&B run.

Lightning's CSVLogger deletes the metrics.csv it finds, so a run resumed after a pre-emption would keep only what
it logged after resuming. This one keeps the file and its columns; steps redone after a SIGKILL appear twice, the
later rows being the ones the final model saw.
"""

from __future__ import annotations

import csv
import logging
import netrc
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from omegaconf import DictConfig
from pytorch_lightning import loggers
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


log = logging.getLogger(__name__)


def wandb_api_key_configured() -> bool:
    """WANDB_API_KEY, or a `wandb login` entry in the netrc file for the W&B host."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_offline() -> bool:
    """WANDB_MODE decides (offline, dryrun: offline; online, disabled: not); unset, offline unless an API key is
    configured, so that a user without an account logs locally rather than being asked to log in."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode in ("offline", "dryrun")
    return not wandb_api_key_configured()


def wandb_reachable(timeout: float = 5.0) -> bool:
    """Whether W&B's server accepts a connection within `timeout` seconds: without network, W&B's own start waits
    a minute or more before it gives up."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


class WandbLogger(loggers.WandbLogger):
    """Lightning's WandbLogger, online or offline by `wandb_offline()` (`offline` given: as given), and never the
    reason a run fails:

    - offline, the run is written under the job's directory and `wandb sync` uploads it later; `log_model` (the
      checkpoints as artifacts) needs a live run and is skipped there, with a log line;
    - online, a server that does not answer within 5 s, or a start that fails (a key W&B refuses, longer than
      `settings.init_timeout`), falls back to an offline run, with a warning.
    """

    def __init__(self, *args: Any, offline: bool | None = None, log_model: bool | str = False, **kwargs: Any) -> None:
        offline = wandb_offline() if offline is None else offline
        if not offline and not wandb_reachable():
            log.warning("W&B's server cannot be reached: logging offline; upload later with `wandb sync`")
            offline = True
        if offline and log_model:
            log.info("W&B is offline: the checkpoints are not logged as artifacts (logger.wandb.log_model)")
            log_model = False
        super().__init__(*args, offline=offline, log_model=log_model, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self):
        try:
            return super().experiment
        except Exception as e:  # wandb raises CommError, UsageError, AuthenticationError, ... for one cause: no run
            if self._offline:
                raise
            cause = f"{type(e).__name__}: {e}"
            log.warning("W&B could not start online (%s): logging offline; upload later with `wandb sync`", cause)
            import wandb

            wandb.teardown()  # the failed run still holds its id in W&B's service process
            self._offline, self._log_model = True, False
            self._experiment = None
            return super().experiment


def is_wandb(logger: Any) -> bool:
    """A WandbLogger, or a logger config that builds one (told apart without importing wandb)."""
    if isinstance(logger, DictConfig):
        return str(logger.get("_target_", "")).endswith("WandbLogger")
    return any(cls.__name__ == "WandbLogger" for cls in type(logger).__mro__)


def finish_wandb(loggers: list) -> None:
    """Close this job's W&B run: multirun jobs share one process, and an open run would swallow the next job."""
    if any(is_wandb(logger) for logger in loggers):
        import wandb

        wandb.finish()
