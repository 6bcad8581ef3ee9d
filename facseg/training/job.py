"""One training job, end to end: fit, select on validation, test the selected checkpoint (clean and occluded),
write metrics.json, cost.json and status.json (facseg.runtime.record). `facseg.run` is its command; facseg.study runs
it in-process for every trial and seed. Imported only once a config has composed, so that `--help`, `--cfg` and
config errors answer before the deep-learning stack loads."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import SIGTERMException

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.models.cost import model_cost
from facseg.models.module import FaceSegModule
from facseg.runtime.callbacks import TrainingClock
from facseg.runtime.ddp import end_ddp_job
from facseg.runtime.device_pool import claim_device
from facseg.runtime.loggers import finish_wandb, is_wandb
from facseg.runtime.precision import device_type, trainer_precision
from facseg.runtime.provenance import produced_by
from facseg.runtime.record import (
    METRICS_FILE,
    failed_status,
    read_metrics,
    read_status,
    wandb_run_id,
    write_cost,
    write_metrics,
    write_provenance,
    write_status,
)
from facseg.runtime.redact import redact
from facseg.scoring.evaluator import TestEvaluator
from facseg.scoring.footprint import TestMemoryCheck
from facseg.training.config_checks import check_config

log = logging.getLogger(__name__)
BEST = "best.ckpt"  # the selected checkpoint's stable name, beside best-epochNNN.ckpt

# ExactResume skips the batches an interrupted epoch had done, which Lightning cannot know.
warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch ended.*")


def resume_checkpoint(cfg: DictConfig, output_dir: Path) -> str | None:
    """An explicit `ckpt_path`, else this run directory's last checkpoint, else None (a fresh start)."""
    if cfg.ckpt_path:
        if not Path(cfg.ckpt_path).is_file():
            raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint")
        return str(cfg.ckpt_path)
    last = output_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def on_gpu(cfg: DictConfig) -> bool:
    return device_type(cfg.trainer.accelerator) == "cuda"


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint on the test split, write metrics.json; return the best val metric."""
    overrides = {"precision": trainer_precision(cfg.trainer, [cfg.model])}
    if cfg.trainer.get("sync_batchnorm") and not on_gpu(cfg):
        log.info("trainer.sync_batchnorm: SyncBatchNorm runs on GPUs only; each process normalises its own batch")
        overrides["sync_batchnorm"] = False
    if cfg.get("parallel"):  # one of several parallel jobs: train on a GPU of one's own
        with claim_device(cfg.parallel.devices, cfg.parallel.lock_dir) as device:
            return _train(cfg, {**overrides, "devices": [device]} if on_gpu(cfg) else overrides)
    return _train(cfg, overrides)


def _train(cfg: DictConfig, trainer_overrides: dict[str, Any]) -> float:
    check_config(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    module = FaceSegModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        **datamodule.recorded_settings,
        dice_weight=cfg.loss.dice_weight,
        optimizer=hydra.utils.instantiate(cfg.optimizer),
        scheduler=hydra.utils.instantiate(cfg.scheduler) if cfg.get("scheduler") else None,
        **cfg.speed,
    )
    evaluator = TestEvaluator(output_dir, errors=cfg.error_kinds)
    clock = TrainingClock()
    callbacks = [*(hydra.utils.instantiate(c) for c in cfg.callbacks.values()), evaluator, clock]
    if cfg.test:  # a test the machine cannot hold stops the run before training, not after it
        callbacks.append(TestMemoryCheck())
    loggers = [hydra.utils.instantiate(c, **_resume_args(c, output_dir)) for c in cfg.logger.values()]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers, **trainer_overrides)
    for logger in loggers:
        logger.log_hyperparams(redact(OmegaConf.to_container(cfg, resolve=True)))
        if is_wandb(logger):  # the summary keeps the best validation values, not the last
            logger.experiment.define_metric(cfg.optimized_metric, summary="max")
            logger.experiment.define_metric("val/loss", summary="min")

    try:
        resume = resume_checkpoint(cfg, output_dir)
        if resume:
            log.info("Resuming from %s", resume)
        elif cfg.get("init_from"):
            init_weights(module, cfg.init_from)
        # weights_only: a checkpoint holds tensors and plain data only, so loading one never runs code.
        clock.begin()
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        except Exception as e:
            if trainer.received_sigterm:  # the workers died of it first: end as Lightning's own SIGTERM exit does,
                raise SIGTERMException(0) from e  # which also ends a sweep rather than starting its next job
            raise
        seconds = {"training": clock.seconds()}  # a resumed run's earlier sessions' too
        best_path, best_score = selected_checkpoint(trainer, cfg.optimized_metric)
        if best_path and trainer.is_global_zero:
            best_path = stable_best(Path(best_path))
        if cfg.test:
            start = time.perf_counter()
            trainer.test(module, datamodule=datamodule, ckpt_path=best_path, weights_only=True, verbose=False)
            seconds["test"] = time.perf_counter() - start
        if trainer.is_global_zero:
            device, precision = trainer.strategy.root_device, trainer.precision
            for stage, spent in seconds.items():
                write_provenance(output_dir, stage, produced_by(device, precision, spent))
            # Timed on the device the run trained on (Lightning hands the module back on the CPU after test).
            net = module.net.to(trainer.strategy.root_device)
            write_cost(output_dir, model_cost(net, datamodule.settings.image_size))
            write_metrics(
                output_dir,
                {
                    "model": cfg.model.name,
                    "data": cfg.data.name,
                    "labels": datamodule.labels.to_dict(),
                    "eval_resolution": datamodule.eval_resolution,
                    "crop": asdict(datamodule.settings),
                    "seed": cfg.seed,
                    "best_checkpoint": best_path,
                    cfg.optimized_metric: best_score,
                    **(evaluator.numbers() if cfg.test else {}),
                },
            )
            if cfg.test:  # the whole table of every condition is in metrics.json; the headline here
                results = evaluator.results
                summary = [
                    f"{k} {100 * float(results[k]):.1f}" for k in ("test/f1_fg", "occluded/f1_fg") if k in results
                ]
                log.info("mean F1 %s: %s", ", ".join(summary), output_dir / METRICS_FILE)
        return best_score
    finally:
        finish_wandb(loggers)
        end_ddp_job(trainer, failed=sys.exc_info()[0] is not None)


def selected_checkpoint(trainer: pl.Trainer, metric: str) -> tuple[str | None, float]:
    """The checkpoint selected on validation and its score. fast_dev_run (debug=fdr) saves none: the test then
    scores the weights as they are, and the score is the one validation batch's."""
    if trainer.fast_dev_run:
        return None, float(trainer.callback_metrics[metric])
    checkpoint = trainer.checkpoint_callback
    if checkpoint is None or checkpoint.best_model_score is None:
        raise RuntimeError(f"no checkpoint was selected on {metric}; did validation run?")
    return checkpoint.best_model_path, float(checkpoint.best_model_score)


def stable_best(path: Path) -> str:
    """checkpoints/best.ckpt: the selected checkpoint under a name scripts can rely on (a hard link, else a copy)."""
    stable = path.with_name(BEST)
    if stable != path:
        stable.unlink(missing_ok=True)
        try:
            os.link(path, stable)
        except OSError:
            shutil.copyfile(path, stable)
    return str(stable)


def init_weights(module: FaceSegModule, path: str) -> None:
    """The weights of the checkpoint at `path`, loaded into `module`; a clear error when they cannot fit it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"init_from={path}: no such checkpoint")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    theirs = (checkpoint.get("hyper_parameters") or {}).get("labels") or {}
    ours = module.label_map
    if theirs and list(theirs.get("names", ())) != list(ours.names):
        raise ValueError(
            f"init_from={path}: its class set ({theirs.get('name')}, {len(theirs.get('names', ()))} classes) is not "
            f"this run's ({ours.name}, {len(ours)} classes); train with its class set (data/labels=...)"
        )
    try:
        module.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as e:
        model = (checkpoint.get("hyper_parameters") or {}).get("model", {})
        raise ValueError(
            f"init_from={path}: its weights (model {model.get('name')}, {model.get('arch')}) do not fit this run's "
            f"net ({module.hparams.model.get('name')}): {str(e).splitlines()[0]}"
        ) from e
    log.info("Weights from %s; the optimizer and schedule start afresh", path)


def _resume_args(logger_cfg: DictConfig, output_dir: Path) -> dict[str, Any]:
    """A W&B run keeps its id in its run directory, so that a resumed run continues it rather than adding one."""
    if not is_wandb(logger_cfg):
        return {}
    return {"id": wandb_run_id(output_dir, create=True), "resume": "allow"}


def finished_run(output_dir: Path, overrides: list[str]) -> dict[str, Any] | None:
    """The metrics of the finished run in `output_dir` (status ok, metrics.json), if it holds one; raises if that
    run was made with other overrides than these (a sweep run again with other settings into the same folder)."""
    status, metrics = read_status(output_dir), read_metrics(output_dir)
    if status["status"] != "ok" or not metrics:
        return None
    if status.get("overrides") != list(overrides):
        raise ValueError(
            f"{output_dir} holds a finished run of {status.get('overrides')}, not of {list(overrides)}: "
            "run the sweep with its first settings, or into another hydra.sweep.dir"
        )
    return metrics


def run_job(cfg: DictConfig, overrides: list[str] | None = None) -> float:
    """train(), with its outcome recorded in status.json for the sweep summary (facseg.runtime.sweep) and the study.

    `overrides`: what set this job apart, as recorded; default: the Hydra job's own overrides.
    """
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if overrides is None:  # as typed: resolving them would expand ${oc.env:...} into the values they point to
        overrides = (
            OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False) if HydraConfig.initialized() else []
        )
    if cfg.skip_done and (done := finished_run(output_dir, overrides)):
        log.info("%s finished before: left as it is (skip_done=true)", output_dir)
        return float(done.get(cfg.optimized_metric, float("nan")))
    try:
        value = train(cfg)
    except Exception as e:
        if rank_zero_only.rank == 0:
            write_status(output_dir, redact(failed_status(e, overrides=overrides)))
        raise  # a sweep's launcher catches it and runs the other jobs
    if rank_zero_only.rank == 0:
        write_status(output_dir, {"status": "ok", "overrides": overrides})
    return value
