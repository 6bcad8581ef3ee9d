"""One test pass that scores several things: checkpoints and ensembles of them, each into its own folder.

Each distinct checkpoint predicts each test batch once; one evaluator per scoring combines the predictions of its
checkpoints (an ensemble averages its members' softmax probabilities, weighted, at the resolution scored, each
member's logits warped back onto the photo exactly as a single net's are: an ensemble of a checkpoint with itself
scores as the checkpoint). `tta=flip` adds each net's view of the mirrored photo (left/right classes swapped
back) to the average, with equal weight. A study's 16 ensembles of 15 checkpoints run each checkpoint once instead
of four times. Data labelled in another class set is scored in the checkpoints' classes through the mapping the
data's class set declares (a LaPa-class net on CelebAMask-HQ: `data=celebamask`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from facseg.data.labels import LabelMap
from facseg.models.ensemble import Ensemble, Mirrored, normalised_weights
from facseg.runtime.loggers import finish_wandb, is_wandb
from facseg.runtime.precision import scoring_precision
from facseg.runtime.provenance import produced_by
from facseg.runtime.record import wandb_run_id, write_provenance, write_test_metrics
from facseg.runtime.redact import redact
from facseg.scoring.checkpoints import checkpoint_settings, data_config, load
from facseg.scoring.evaluator import TestEvaluator
from facseg.scoring.probabilities import SharedBatch

CHECKPOINT_KEYS = ("ckpt_path", "ckpt_paths", "weights", "name")  # the command line's; a scoring logs its own


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


def score(cfg: DictConfig, scorings: list[Scoring]) -> list[dict]:
    """Every scoring in one pass over the test loaders (cfg: the data, tta, trainer and loggers, as
    conf/evaluate.yaml composes them); the metrics.json of each, as written."""
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
    shared = SharedBatch()  # each batch's scores, once for every scoring
    evaluators = [
        TestEvaluator(
            s.output_dir,
            members=[views * paths.index(p) + v for p in s.checkpoints for v in range(views)],
            weights=[float(w) for w in member_weights for _ in range(views)],
            log=False,
            shared=shared,
            loss=members[paths.index(s.checkpoints[0])].loss,
            errors=cfg.error_kinds,
        )
        for s, member_weights in zip(scorings, weights)
    ]
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer,
        callbacks=evaluators,
        logger=False,
        precision=scoring_precision(
            cfg.trainer.get("precision", "32-true"),
            cfg.trainer.get("accelerator", "auto"),
            [m.trained_with.get("precision") for m in members],  # None: not recorded
        ),
    )
    start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, weights_only=True, verbose=False)
    # The pass's seconds, shared by every scoring in it; and the test's own versions and device, which may be
    # another machine's than the training's.
    tested_by = produced_by(trainer.strategy.root_device, trainer.precision, time.perf_counter() - start)
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
        if trainer.is_global_zero:
            log_run(cfg, label, metrics, names, settings, evaluator, s.into_run)
            metrics = write_test_metrics(s.output_dir, metrics, s.into_run)
            write_provenance(s.output_dir, "test", {**tested_by, "scorings_in_the_pass": len(scorings)})
        out.append(metrics)
    return out


def make_loggers(cfg: DictConfig, name: str, models: list[str], output_dir: Path, run_id: str | None = None) -> list:
    """The configured loggers, writing in `output_dir`; the W&B run named after what is scored and tagged with its
    models and data, or with `run_id`, that (training) run continued."""
    if run_id:
        wandb_run = {"id": run_id, "resume": "allow"}
    else:
        wandb_run = {"name": name, "tags": [*dict.fromkeys(models), cfg.data.name, *cfg.tags]}
    configs = (cfg.get("logger") or {}).values()
    return [hydra.utils.instantiate(c, save_dir=str(output_dir), **(wandb_run if is_wandb(c) else {})) for c in configs]


def log_run(
    cfg: DictConfig,
    label: str,
    metrics: dict,
    names: list[str],
    settings: dict,
    evaluator: TestEvaluator,
    into_run: bool,
) -> None:
    """The scoring's own logger runs (W&B: an offline or live run): the config, what was scored, results, media.
    `into_run`: the training run's W&B run continued with the results (its config is the training's, kept)."""
    run_id = wandb_run_id(evaluator.output_dir) if into_run else None
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
