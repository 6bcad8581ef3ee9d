"""The study's jobs as Hydra composes them: the user's overrides for every job, training runs (facseg.run) in
folders of the study's own, and the scoring config of its test pass."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf, open_dict

from facseg.runtime.precision import trainer_precision
from facseg.runtime.record import read_metrics
from facseg.study.plan import StudyPlan
from facseg.training.job import run_job


def key(override: str) -> str:
    return override.split("=", 1)[0]


class StudyJobs:
    """`overrides`: the study's command line; every job gets the user's run overrides among them (the study sets the
    model, the seed and the searched keys itself)."""

    def __init__(self, plan: StudyPlan, overrides: list[str], searched: set[str]) -> None:
        self.plan = plan
        self.overrides = [
            o for o in overrides if key(o) not in {"model", "seed", *searched} and not key(o).startswith("study.")
        ]

    def compose(self, config: str, overrides: list[str]) -> DictConfig:
        return hydra.compose(config_name=config, overrides=overrides)

    def pin_precision(self, models: list[str]) -> str:
        """The study's one precision: `trainer.precision` resolved for all its nets together (`auto`: bfloat16 only
        where every net may use it, facseg.runtime.precision), and given to every job it composes."""
        nets = [self.compose("train", [*self.overrides, f"model={model}"]).model for model in models]
        precision = trainer_precision(self.plan.cfg.trainer, nets)
        kept = [o for o in self.overrides if key(o) != "trainer.precision"]
        self.overrides = [*kept, f"trainer.precision={precision}"]
        return precision

    def train(
        self, output_dir: Path, model: str, seed: int, params: dict[str, Any], extra: list[str], keep_best: bool
    ) -> float:
        """One facseg.run job in `output_dir` (resumed there if it was killed); its best validation score.

        A finished job keeps only its selected weights (best.ckpt) when `keep_best`, else no checkpoint: last.ckpt
        is resume state, three times the weights' size; a trial's result is its score, a seed run's its weights.
        """
        job = [f"model={model}", f"seed={seed}", *(f"{k}={v!r}" for k, v in params.items()), *extra]
        cfg = self.compose("train", [*self.overrides, *job, f"group={self.plan.name}"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            if "wandb" in (cfg.get("logger") or {}):
                cfg.logger.wandb.job_type = "study"
        value = run_job(cfg, job)
        checkpoints = output_dir / "checkpoints"
        if not keep_best:
            shutil.rmtree(checkpoints, ignore_errors=True)
            return value
        kept = Path(read_metrics(output_dir)["best_checkpoint"]).name  # best.ckpt; its best-epochNNN twin goes too
        for path in checkpoints.glob("*.ckpt"):
            if path.name != kept:
                path.unlink()
        return value

    def evaluate_config(self, overrides: list[str]) -> DictConfig:
        """facseg.evaluate's config with the study's data (as the runs were trained: an experiment preset's too),
        device and logger overrides."""
        kept = ("trainer.accelerator", "trainer.devices", "trainer.precision")
        own = [o for o in self.overrides if key(o) in kept or key(o).lstrip("~+").split(".")[0] == "logger"]
        cfg = self.compose("evaluate", [*own, *overrides])
        with open_dict(cfg):
            cfg.data = OmegaConf.create(OmegaConf.to_container(self.plan.cfg.data, resolve=True))
        return cfg
