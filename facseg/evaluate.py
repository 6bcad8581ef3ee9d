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
net's view of the mirrored photo (left/right classes swapped back) to the average, with equal weight. `score`
scores several checkpoints and ensembles in one test pass, each into its own folder (a study's ensembles).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.data.labels import LabelMap
from facseg.evaluation import RESULT_PREFIXES, SharedBatch, TestEvaluator
from facseg.io import write_json
from facseg.loggers import finish_wandb, is_wandb
from facseg.models.ensemble import Ensemble, Mirrored, normalised_weights
from facseg.models.module import FaceSegModule
from facseg.redact import redact
from facseg.results import METRICS_FILE, WANDB_ID_FILE, read_metrics

SETTINGS = ("crop", "labels", "normalisation")  # what a checkpoint records of the data it was trained on
CHECKPOINT_KEYS = ("ckpt_path", "ckpt_paths", "weights", "name")  # the command line's; a scoring logs its own


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


@dataclass(frozen=True)
class Scoring:
    """One thing a test pass scores: a checkpoint, or an ensemble of checkpoints with weights (None: equal), and the
    folder that gets its metrics.json, confusion.json, per_image.npz, samples.npz and W&B run. `name`: what it is
    called there (None: the model, or ensemble(unet+segnet+...)). `into_run`: `output_dir` is the training run
    (facseg.run) of the one checkpoint: its metrics.json keeps the run's own keys and gets the test results
    (replacing an earlier test's), and they are logged to the run's own W&B run, not to a new one."""

    name: str | None
    checkpoints: tuple[str, ...]
    weights: tuple[float, ...] | None
    output_dir: Path
    into_run: bool = False


def make_loggers(cfg: DictConfig, name: str, models: list[str], output_dir: Path, run_id: str | None = None) -> list:
    """The configured loggers, writing in `output_dir`; the W&B run named after what is scored and tagged with its
    models and data, or with `run_id`, that (training) run continued."""
    if run_id:
        wandb_run = {"id": run_id, "resume": "allow"}
    else:
        wandb_run = {"name": name, "tags": [*dict.fromkeys(models), cfg.data.name, *cfg.tags]}
    configs = (cfg.get("logger") or {}).values()
    return [hydra.utils.instantiate(c, save_dir=str(output_dir), **(wandb_run if is_wandb(c) else {})) for c in configs]


def evaluate(cfg: DictConfig) -> dict:
    """What the config names (ckpt_path, or ckpt_paths and weights) scored into paths.output_dir."""
    paths = list(cfg.ckpt_paths) or ([cfg.ckpt_path] if cfg.ckpt_path else [])
    if not paths:
        raise ValueError("give ckpt_path=PATH, or ckpt_paths=[A,B,...] for an ensemble")
    if cfg.ckpt_path and cfg.ckpt_paths:
        raise ValueError("give ckpt_path or ckpt_paths, not both")
    weights = tuple(cfg.weights) if cfg.weights else None
    (metrics,) = score(cfg, [Scoring(cfg.name, tuple(paths), weights, Path(cfg.paths.output_dir))])
    return metrics


def score(cfg: DictConfig, scorings: list[Scoring]) -> list[dict]:
    """Every scoring in one pass over the test loaders (cfg: the data, tta, trainer and loggers): each distinct
    checkpoint predicts each batch once and one evaluator per scoring combines the predictions of its checkpoints.
    A study's 16 ensembles of 15 checkpoints run each checkpoint once instead of four times."""
    if cfg.tta not in (None, "flip"):
        raise ValueError(f"tta={cfg.tta}: expected flip, or null for none")
    weights = [normalised_weights(list(s.weights) if s.weights else None, len(s.checkpoints)) for s in scorings]
    pl.seed_everything(cfg.seed)
    paths = list(dict.fromkeys(p for s in scorings for p in s.checkpoints))
    members = [load(p) for p in paths]
    settings = checkpoint_settings(paths, members)
    labels = LabelMap.from_config(settings["labels"])
    datamodule = hydra.utils.instantiate(data_config(cfg.data, settings, paths[0]), target_labels=labels.to_dict())
    nets = [m.net for m in members]
    views = 2 if cfg.tta == "flip" else 1  # flip test-time augmentation: each net also sees the mirrored photo
    if views == 2:
        mirror = torch.from_numpy(labels.mirror())
        nets = [view for net in nets for view in (net, Mirrored(net, mirror))]
    module = members[0]
    module.net = Ensemble(nets) if len(nets) > 1 else nets[0]
    shared = SharedBatch(trim=len(scorings) > 1)  # each batch's member probabilities, once for every scoring
    evaluators = [
        TestEvaluator(
            s.output_dir,
            members=[views * paths.index(p) + v for p in s.checkpoints for v in range(views)],
            weights=[float(w) for w in member_weights for _ in range(views)],
            log=False,
            shared=shared,
            loss=members[paths.index(s.checkpoints[0])].loss,
        )
        for s, member_weights in zip(scorings, weights)
    ]
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer, callbacks=evaluators, logger=False)
    trainer.test(module, datamodule=datamodule, weights_only=True, verbose=False)
    out = []
    for s, evaluator, member_weights in zip(scorings, evaluators, weights):
        names = [members[paths.index(p)].hparams.model["name"] for p in s.checkpoints]
        label = s.name or (names[0] if len(names) == 1 else "ensemble(" + "+".join(names) + ")")
        metrics = {
            "model": label,
            "data": cfg.data.name,
            "labels": datamodule.labels.to_dict(),
            "mapped_from": datamodule.dataset_labels.name if datamodule.mapping else None,
            "eval_resolution": datamodule.eval_resolution,
            "crop": settings["crop"],
            "checkpoints": list(s.checkpoints),
            "weights": member_weights.tolist() if len(s.checkpoints) > 1 else None,
            "tta": cfg.tta,
            **evaluator.numbers(),
        }
        if s.into_run:  # the run's own keys (its model, seed, validation score, checkpoint) and the new results
            run = read_metrics(s.output_dir) or {}
            metrics = {
                **{k: v for k, v in run.items() if not k.startswith(RESULT_PREFIXES)},
                **{k: v for k, v in metrics.items() if k.startswith(RESULT_PREFIXES)},
            }
        if trainer.is_global_zero:
            log_run(cfg, metrics, names, settings, evaluator, s.into_run)
            write_json(s.output_dir / METRICS_FILE, metrics)
        out.append(metrics)
    return out


def log_run(
    cfg: DictConfig, metrics: dict, names: list[str], settings: dict, evaluator: TestEvaluator, into_run: bool
) -> None:
    """The scoring's own logger runs (W&B: an offline or live run): the config, what was scored, results, media.
    `into_run`: the training run's W&B run continued with the results (its config is the training's, kept)."""
    label = metrics["model"]
    id_file = evaluator.output_dir / WANDB_ID_FILE
    run_id = id_file.read_text().strip() if into_run and id_file.is_file() else None
    loggers = make_loggers(cfg, f"{label} tta={cfg.tta}" if cfg.tta else label, names, evaluator.output_dir, run_id)
    if not loggers:
        return
    try:
        logged = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in CHECKPOINT_KEYS}
        scored = {key: metrics.get(key) for key in ("model", "checkpoints", "weights")}
        for logger in loggers:
            if not into_run:
                logger.log_hyperparams(redact({**logged, **scored, "checkpoint_settings": settings}))
            logger.log_metrics({k: v for k, v in evaluator.numbers().items() if v is not None}, step=0)
            logger.save()
        evaluator.log_media(loggers)
    finally:
        finish_wandb(loggers)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
