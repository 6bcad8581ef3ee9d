"""Checks of a composed config that fail before any data is read or any net is built, naming the key."""

from __future__ import annotations

from omegaconf import DictConfig

from facseg.models.factory import available_architectures

# Every net here halves its input five times (SMP encoders at depth 5, SegNet's five poolings).
OUTPUT_STRIDE = 32


class ConfigError(ValueError):
    pass


def check_config(cfg: DictConfig) -> None:
    size = cfg.data.image_size
    if size % OUTPUT_STRIDE:
        raise ConfigError(
            f"data.image_size={size} must be a multiple of {OUTPUT_STRIDE}, the nets' output stride; "
            f"try {max(OUTPUT_STRIDE, round(size / OUTPUT_STRIDE) * OUTPUT_STRIDE)}"
        )
    arch = str(cfg.model.arch).lower()
    if arch not in available_architectures():
        raise ConfigError(f"model.arch={cfg.model.arch} is unknown; available: {', '.join(available_architectures())}")
    if not str(cfg.optimized_metric).startswith("val/"):
        raise ConfigError(
            f"optimized_metric={cfg.optimized_metric}: checkpoints are selected on a val/ metric, never on test"
        )
    if cfg.data.batch_size < 2:
        raise ConfigError(f"data.batch_size={cfg.data.batch_size}: training BatchNorm needs at least 2 images a batch")
    if cfg.trainer.get("limit_val_batches", 1.0) == 0:
        raise ConfigError("trainer.limit_val_batches=0: without validation no checkpoint can be selected")
    if cfg.get("parallel") and cfg.trainer.devices != 1:
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} with parallel=gpus: each parallel job trains on one "
            "GPU of its own; use trainer=default, or drop parallel= for a multi-GPU job"
        )
