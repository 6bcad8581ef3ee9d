"""Score checkpoints on the test split, alone or as an ensemble, and write metrics.json with the training keys.

    python -m facseg.evaluate ckpt_path=logs/runs/.../checkpoints/best-epoch007.ckpt
    python -m facseg.evaluate "ckpt_paths=[A.ckpt,B.ckpt,C.ckpt]" "weights=[2,1,1]"

A checkpoint is scored with the settings it was trained with (crop, class set, normalisation), read from the
checkpoint itself: the data config only says where the data is and how to score it. An explicit data override that
contradicts the checkpoint, and an ensemble whose members disagree, are refused. Data labelled in another class set
is scored in the checkpoint's classes through the mapping the data's class set declares (a LaPa-class net on
CelebAMask-HQ: `data=celebamask`); without one, the error names what to declare. An ensemble averages the members'
softmax probabilities (weighted) at the resolution scored, each member's logits warped back onto the photo exactly
as a single net's are: an ensemble of a checkpoint with itself scores as the checkpoint. `tta=flip` adds each
net's view of the mirrored photo (left/right classes swapped back) to the average, with equal weight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.data.labels import LabelMap
from facseg.evaluation import TestEvaluator, logged_results
from facseg.io import write_json
from facseg.loggers import finish_wandb, is_wandb
from facseg.models.ensemble import Ensemble, with_flip_tta
from facseg.models.module import FaceSegModule
from facseg.redact import redact
from facseg.results import METRICS_FILE

SETTINGS = ("crop", "labels", "normalisation")  # what a checkpoint records of the data it was trained on


def load(path: str) -> FaceSegModule:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return FaceSegModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)


def checkpoint_settings(paths: list[str], members: list[FaceSegModule]) -> dict[str, Any]:
    """The data settings the checkpoints were trained with; raises when a member lacks them or members disagree."""
    found = []
    for path, member in zip(paths, members):
        settings = {key: member.hparams.get(key) for key in SETTINGS}
        missing = [key for key, value in settings.items() if value is None]
        if missing:
            raise ValueError(f"{path} records no {', '.join(missing)} (it predates them): retrain it with this facseg")
        found.append(OmegaConf.to_container(OmegaConf.create(settings)))  # tuples and lists alike
    for key in SETTINGS:
        for path, settings in zip(paths[1:], found[1:]):
            if settings[key] != found[0][key]:
                raise ValueError(
                    f"the ensemble's members were trained with different {key}: {paths[0]} has {found[0][key]}, "
                    f"{path} has {settings[key]}; ensemble checkpoints trained alike"
                )
    return found[0]


def data_config(data: DictConfig, settings: dict[str, Any], source: str) -> DictConfig:
    """The data config with the checkpoint's crop and normalisation; an explicit value must agree with it."""
    data = data.copy()
    wanted = {**settings["crop"], "normalisation": settings["normalisation"]}
    with open_dict(data):
        for key, value in wanted.items():
            given = data.get(key)
            given = OmegaConf.to_container(given) if OmegaConf.is_config(given) else given
            if given is not None and given != value:
                raise ValueError(
                    f"data.{key}={given} contradicts the checkpoint, trained with {key}={value} ({source}): "
                    f"drop the override, the checkpoint's own settings are used"
                )
            data[key] = value
    return data


def make_loggers(cfg: DictConfig, name: str, models: list[str]) -> list:
    """The configured loggers; the W&B run named after what is scored and tagged with its models and data."""
    wandb_run = {"name": name, "tags": [*dict.fromkeys(models), cfg.data.name, *cfg.tags]}
    configs = (cfg.get("logger") or {}).values()
    return [hydra.utils.instantiate(c, **(wandb_run if is_wandb(c) else {})) for c in configs]


def evaluate(cfg: DictConfig) -> dict:
    paths = list(cfg.ckpt_paths) or ([cfg.ckpt_path] if cfg.ckpt_path else [])
    if not paths:
        raise ValueError("give ckpt_path=PATH, or ckpt_paths=[A,B,...] for an ensemble")
    if cfg.ckpt_path and cfg.ckpt_paths:
        raise ValueError("give ckpt_path or ckpt_paths, not both")
    if cfg.tta not in (None, "flip"):
        raise ValueError(f"tta={cfg.tta}: expected flip, or null for none")
    pl.seed_everything(cfg.seed)
    members = [load(p) for p in paths]
    settings = checkpoint_settings(paths, members)
    labels = LabelMap.from_config(settings["labels"])
    datamodule = hydra.utils.instantiate(data_config(cfg.data, settings, paths[0]), target_labels=labels.to_dict())
    module = members[0]
    names = [m.hparams.model["name"] for m in members]
    label = cfg.name or (names[0] if len(names) == 1 else "ensemble(" + "+".join(names) + ")")
    if len(members) > 1:
        module.net = Ensemble([m.net for m in members], list(cfg.weights) if cfg.weights else None)
    members_weights = module.net.weights.tolist() if len(members) > 1 else None
    if cfg.tta == "flip":
        module.net = with_flip_tta(module.net, torch.from_numpy(labels.mirror()))
    output_dir = Path(cfg.paths.output_dir)
    loggers = make_loggers(cfg, f"{label} tta={cfg.tta}" if cfg.tta else label, names)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=[TestEvaluator(output_dir)], logger=loggers or False
    )
    try:
        logged = redact({**OmegaConf.to_container(cfg, resolve=True), "checkpoint_settings": settings})
        for logger in loggers:
            logger.log_hyperparams(logged)
        trainer.test(module, datamodule=datamodule, weights_only=True, verbose=False)
    finally:
        finish_wandb(loggers)
    metrics = {
        "model": label,
        "data": cfg.data.name,
        "labels": datamodule.labels.to_dict(),
        "mapped_from": datamodule.dataset_labels.name if datamodule.mapping else None,
        "eval_resolution": datamodule.eval_resolution,
        "crop": settings["crop"],
        "checkpoints": [str(p) for p in paths],
        "weights": members_weights,
        "tta": cfg.tta,
        **logged_results(trainer),
    }
    write_json(output_dir / METRICS_FILE, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
