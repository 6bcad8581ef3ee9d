"""Train one model, test its best checkpoint, write metrics.json.

python -m facseg.run                                   one run with the defaults (U-Net, synthetic data)
python -m facseg.run -m model=unet,segnet,pspnet       the architecture comparison, one job per model
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.models.module import FaceSegModule

log = logging.getLogger(__name__)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: readers never see a half-written file, even after a kill."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def _number(value: Any) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value  # JSON has no NaN: an undefined metric is null


def train(cfg: DictConfig) -> float:
    """Fit, test the best checkpoint on the test split, write metrics.json; return the best val metric."""
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    datamodule = hydra.utils.instantiate(cfg.data)
    module = FaceSegModule(model=OmegaConf.to_container(cfg.model, resolve=True), **cfg.optim)
    callbacks = [hydra.utils.instantiate(c) for c in cfg.callbacks.values()]
    loggers = [hydra.utils.instantiate(c) for c in cfg.logger.values()]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    try:
        trainer.fit(module, datamodule=datamodule)
        checkpoint = trainer.checkpoint_callback
        best_score = checkpoint.best_model_score
        if best_score is None:
            raise RuntimeError(f"no checkpoint was selected on {cfg.optimized_metric}; did validation run?")
        trainer.test(module, datamodule=datamodule, ckpt_path=checkpoint.best_model_path)
        test_metrics = {k: _number(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
        if trainer.is_global_zero:
            write_json(
                output_dir / "metrics.json",
                {
                    "model": cfg.model.name,
                    "data": cfg.data.name,
                    "eval_resolution": datamodule.eval_resolution,
                "align": datamodule.settings.align,
                    "seed": cfg.seed,
                    "best_checkpoint": str(checkpoint.best_model_path),
                    cfg.optimized_metric: float(best_score),
                    **test_metrics,
                },
            )
        return float(best_score)
    finally:
        _finish_wandb(loggers)


def _finish_wandb(loggers: list) -> None:
    """Close this job's W&B run: multirun jobs share one process, and an open run would swallow the next job."""
    if any(type(logger).__name__ == "WandbLogger" for logger in loggers):
        import wandb

        wandb.finish()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    return train(cfg)


if __name__ == "__main__":
    main()
