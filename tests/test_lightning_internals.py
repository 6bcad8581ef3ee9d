"""The private Lightning APIs facseg builds on (pinned to one minor version in pyproject.toml): if an upgrade moves
one, this fails by name, before DDP, resumed CSV logs, exact resume or the W&B fallback break in a subtler way."""

import inspect

import pytorch_lightning as pl
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.strategies import DDPStrategy
from pytorch_lightning.strategies.launchers.subprocess_script import _SubprocessScriptLauncher


def test_ddp_launcher_hooks_exist():
    """facseg.runtime.ddp: HydraDDPStrategy swaps the launcher that _configure_launcher sets for one of its own."""
    assert callable(DDPStrategy._configure_launcher)
    for name in ("_call_children_scripts", "_check_can_spawn_children"):
        assert callable(getattr(_SubprocessScriptLauncher, name)), name
    assert list(inspect.signature(_SubprocessScriptLauncher.__init__).parameters)[1:4] == [
        "cluster_environment",
        "num_processes",
        "num_nodes",
    ]


def test_csv_writer_hook_exists(tmp_path):
    """facseg.runtime.loggers: the resumable CSV logger keeps the file that _check_log_dir_exists would otherwise
    clear."""
    writer = ExperimentWriter(log_dir=str(tmp_path))
    assert callable(writer._check_log_dir_exists) and hasattr(writer, "metrics_keys")
    assert writer.metrics_file_path.endswith("metrics.csv")


def test_fit_loop_batch_progress_exists():
    """facseg.runtime.callbacks.ExactResume: how many batches of the epoch were done when the checkpoint was saved."""
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert trainer.fit_loop.epoch_loop.batch_progress.current.completed == 0


def test_signal_connector_flag_exists():
    """facseg.runtime.callbacks.ExactResume: USR2 under submitit stops training as SIGTERM does, through this flag."""
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer._signal_connector.received_sigterm = True
    assert trainer.received_sigterm


def test_wandb_logger_state_exists(tmp_path):
    """facseg.runtime.loggers.WandbLogger: an online start that fails is retried offline by resetting these."""
    logger = pl.loggers.WandbLogger(save_dir=str(tmp_path), offline=True)
    assert logger._offline is True and logger._log_model is False and logger._experiment is None
