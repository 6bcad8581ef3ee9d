"""The study's test pass: the runs not tested yet and the ensembles not scored yet, all in one pass over the test
split (facseg.scoring.onepass): each checkpoint predicts each test batch once, for its own run's results and for
every ensemble it is in. Fitted ensemble weights come from the validation split, never the test."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf, open_dict

from facseg.data.labels import IGNORE
from facseg.models.ensemble import fit_weights
from facseg.runtime.record import failed_status, mark_tested, read_metrics, read_status, write_status
from facseg.scoring.checkpoints import checkpoint_settings, data_config, load
from facseg.scoring.onepass import Scoring, score
from facseg.study.jobs import StudyJobs
from facseg.study.plan import StudyPlan

log = logging.getLogger(__name__)


class StudyTestPass:
    def __init__(self, plan: StudyPlan, jobs: StudyJobs) -> None:
        self.plan, self.jobs = plan, jobs

    @property
    def protocol(self) -> str:
        """A fingerprint of how runs are tested (the occluded conditions, the scoring resolution): study.rescore
        tests again what was tested otherwise. Where the real occluders' data and caches sit is not part of it (a
        study resumed from another checkout tests as before); whether their data is there is."""
        data = OmegaConf.to_container(self.plan.cfg.data, resolve=True)
        occluded = data.get("occluded_test")
        if occluded and occluded.get("real"):
            real = {k: v for k, v in occluded["real"].items() if k not in ("cache_dir", "composed_dir")}
            root = Path(real["root"]) if real.get("root") else None
            real["root"] = root and {"name": root.name, "present": root.is_dir()}
            occluded = {**occluded, "real": real}
        spec = {"occluded_test": occluded, "eval_resolution": data.get("eval_resolution")}
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]

    @staticmethod
    def untested(output_dir: Path) -> bool:
        """A run trained and not tested yet (runs tested before the protocol's fingerprint was kept count as
        tested)."""
        status = read_status(output_dir)
        tested = "test_protocol" in status or "test/f1_fg" in (read_metrics(output_dir) or {})
        return status["status"] == "ok" and not tested

    def to_test(self, output_dir: Path) -> bool:
        """Whether a finished run or ensemble is tested now: never tested, or tested under another test protocol
        and study.rescore asks for it."""
        status = read_status(output_dir)
        other_protocol = status["status"] == "ok" and status.get("test_protocol") != self.protocol
        return self.untested(output_dir) or (self.plan.settings.rescore and other_protocol)

    def ensembles_due(self, models: list[str]) -> list[tuple[str, list[Path], Path]]:
        """The ensembles (StudyPlan.ensembles) to score now: not scored yet, failed, due under to_test, or scored with
        other members than the plan's now (a run that had failed then, retrained since)."""
        due = []
        for label, members, output_dir in self.plan.ensembles(models):
            scored = (read_metrics(output_dir) or {}).get("checkpoints") or []
            other_members = [Path(p).parts[-3:] for p in scored] != [Path(p).parts[-3:] for p in members]
            if read_status(output_dir)["status"] != "ok" or other_members or self.to_test(output_dir):
                due.append((label, members, output_dir))
        return due

    def run(self, models: list[str], arm: str, ensembles: bool) -> None:
        """The arm's runs not tested yet and, with `ensembles`, the ensembles not scored yet, in one test pass.
        Weights that cannot be fitted fail their ensemble; a failing pass fails the ensembles it scores and leaves
        its runs untested; either is named in the report and the rest go on."""
        runs = [(m, self.plan.run_dir(m, s, arm)) for m in models for s in self.plan.seeds()]
        scorings = [
            Scoring(model, (read_metrics(path)["best_checkpoint"],), None, path, into_run=True)
            for model, path in runs
            if self.to_test(path)
        ]
        todo = self.ensembles_due(models) if ensembles else []
        fitted = sorted({p for label, members, _ in todo if label.endswith("(fitted)") for p in members})
        log_probs = self.validation_log_probs(fitted) if fitted else {}  # read once for every fitted ensemble
        for label, members, output_dir in todo:
            try:
                fit = label.endswith("(fitted)")
                weights = tuple(fit_weights(torch.stack([log_probs[p] for p in members]))) if fit else None
                scorings.append(Scoring(label, tuple(str(p) for p in members), weights, output_dir))
            except Exception as e:
                self.ensemble_failed(label, output_dir, e)
        if not scorings:
            return
        try:
            results = self.score_together(scorings)
        except Exception as e:
            log.error("the test pass failed: %s", e)
            for scoring in scorings:
                if not scoring.into_run:
                    self.ensemble_failed(scoring.name, scoring.output_dir, e)
            return
        for scoring, metrics in zip(scorings, results):
            if scoring.into_run:
                mark_tested(scoring.output_dir, self.protocol)
                headline = [f"{k} {100 * metrics[k]:.1f}" for k in ("test/f1_fg", "occluded/f1_fg") if metrics.get(k)]
                log.info("%s: mean F1 %s", scoring.output_dir.name, ", ".join(headline))
            else:
                write_status(scoring.output_dir, {"status": "ok", "test_protocol": self.protocol})

    @staticmethod
    def ensemble_failed(label: str, output_dir: Path, error: Exception) -> None:
        log.error("ensemble %s failed: %s", label, error)
        write_status(output_dir, failed_status(error))

    def score_together(self, scorings: list[Scoring]) -> list[dict]:
        """Checkpoints and ensembles scored in one test pass, with the study's W&B group."""
        cfg = self.jobs.evaluate_config([f"group={self.plan.name}"])
        with open_dict(cfg):
            cfg.seed = self.plan.cfg.seed
            if "wandb" in (cfg.get("logger") or {}):
                cfg.logger.wandb.job_type = "study"
        return score(cfg, scorings)

    @torch.no_grad()
    def validation_log_probs(self, paths: list[Path]) -> dict[Path, torch.Tensor]:
        """Each checkpoint's log probability of the true class at every `fit_stride`-th pixel row and column of the
        validation crops, all checkpoints in one pass over the split (they were trained alike: one crop for all)."""
        modules = [load(str(p)).eval() for p in paths]
        settings = checkpoint_settings([str(p) for p in paths], modules)
        data = data_config(self.jobs.evaluate_config([]).data, settings, str(paths[0]))
        datamodule = hydra.utils.instantiate(data, target_labels=settings["labels"])
        datamodule.prepare_data()
        datamodule.setup("validate")
        stride, out = self.plan.settings.fit_stride, {p: [] for p in paths}
        for batch in datamodule.val_dataloader():
            labels = batch["label"][:, ::stride, ::stride]
            scored = labels != IGNORE
            for path, module in zip(paths, modules):
                log_probs = module(batch["image"]).log_softmax(1)[:, :, ::stride, ::stride]
                out[path].append(log_probs.gather(1, labels.where(scored, 0)[:, None])[:, 0][scored])
        return {path: torch.cat(values) for path, values in out.items()}
