"""The fair comparison in one command: the same tuning budget per architecture, seeds, ensembles, intervals.

    python -m facseg.study [study.trials=N study.seeds=M] [any run override] hydra.sweep.dir=DIR

1. Search: per architecture, one Optuna study over `study.space` with `study.trials` trials of
   `study.search_epochs` epochs, scored on validation (`optimized_metric`) only: the test split is never touched.
   The best trial's settings are each architecture's chosen settings (DIR/chosen.json).
2. Retrain: each architecture's chosen settings with `study.seeds` fresh seeds, every run tested as `facseg.run`
   tests (clean and under every occluded condition, per-image results kept); with `study.arms=[clean,occluded]`,
   also trained with occluders on a fraction `study.occlusion_p` of the training images (the same settings and
   seeds: an arm of the study, not another search), reported beside the clean-trained runs under every condition.
3. Ensembles, of the clean-trained runs: each architecture's seeds as one ensemble, and the architectures together
   (one ensemble per seed index, so it has seeds too), each with equal weights and with weights fitted on
   validation.
4. The report (DIR/report.md): every configuration with 95 % intervals over seeds and test images, paired tests,
   the chosen settings, the ensembles' weights and the time each phase took.

Resuming: every trial is recorded in DIR/search/MODEL/trials.json, every run and ensemble in its own folder with its
status.json. Rerunning the command skips what finished, resumes a killed run from its last checkpoint and reruns
an interrupted trial with its own settings. A failing trial is recorded as failed and the search goes on; an
architecture whose every trial failed, or a run that fails, is named in the report and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import optuna
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

import facseg  # noqa: F401  (registers the config resolvers)
from facseg import report as reporting
from facseg.data.labels import IGNORE
from facseg.evaluate import Scoring, checkpoint_settings, data_config, load, score
from facseg.io import write_json
from facseg.models.ensemble import fit_weights
from facseg.results import (
    STATUS_FILE,
    failed_status,
    read_json,
    read_metrics,
    read_status,
)
from facseg.run import run_job

log = logging.getLogger(__name__)
STATE_FILE, CHOSEN_FILE = "study.json", "chosen.json"
OCCLUSION_ARM = "occl"  # the folder tag of the occlusion-trained runs


class Study:
    def __init__(self, cfg: DictConfig, directory: Path, overrides: list[str]) -> None:
        self.cfg, self.settings, self.dir = cfg, cfg.study, directory
        self.name = directory.name
        # The user's run overrides, for every job; the study sets the model, the seed and the searched keys itself.
        searched = set(self.settings.space)
        self.overrides = [
            o for o in overrides if _key(o) not in {"model", "seed", *searched} and not _key(o).startswith("study.")
        ]
        self.state = read_json(directory / STATE_FILE) or {"seconds": {}}

    # -- jobs -------------------------------------------------------------------------------------------------
    def compose(self, config: str, overrides: list[str]) -> DictConfig:
        return hydra.compose(config_name=config, overrides=overrides)

    def train_job(
        self, output_dir: Path, model: str, seed: int, params: dict[str, Any], extra: list[str], keep_best: bool
    ) -> float:
        """One facseg.run job in `output_dir` (resumed there if it was killed); its best validation score.

        A finished job's last.ckpt (resume state, three times the weights' size) is deleted, and so is its best
        checkpoint unless `keep_best`: a trial's result is its score, a seed run's its tested weights.
        """
        job = [f"model={model}", f"seed={seed}", *(f"{k}={v!r}" for k, v in params.items()), *extra]
        cfg = self.compose("train", [*self.overrides, *job, f"group={self.name}"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(output_dir)
            if "wandb" in (cfg.get("logger") or {}):
                cfg.logger.wandb.job_type = "study"
        value = run_job(cfg, job)
        checkpoints = output_dir / "checkpoints"
        (checkpoints / "last.ckpt").unlink(missing_ok=True)
        if not keep_best:
            shutil.rmtree(checkpoints, ignore_errors=True)
        return value

    # -- 1. search --------------------------------------------------------------------------------------------
    def search(self, model: str) -> dict[str, Any] | None:
        """The architecture's Optuna search, run (or resumed) to `study.trials` finished trials; its best trial.

        Each trial is recorded in search/MODEL/trials.json before it runs and when it ends; a resumed search gives
        the sampler the finished trials back and reruns an interrupted one with its own settings (in its folder,
        so from its last checkpoint). No database: Optuna's RDB storage needs a matching SQLAlchemy.
        """
        record_file = self.dir / "search" / model / "trials.json"
        record_file.parent.mkdir(parents=True, exist_ok=True)
        records = read_json(record_file) or []
        sampler = optuna.samplers.TPESampler(seed=self.settings.sampler_seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        space = {
            key: (float(r.low), float(r.high), bool(r.get("log", False))) for key, r in self.settings.space.items()
        }
        distributions = {key: _float_distribution(*bounds) for key, bounds in space.items()}

        def run(number: int) -> None:
            records[number].update(self.trial(model, number, records[number]["params"]))
            write_json(record_file, records)

        for number, record in enumerate(records):
            if record["state"] == "running":  # killed mid-run
                run(number)
            state = optuna.trial.TrialState.COMPLETE if record["state"] == "complete" else optuna.trial.TrialState.FAIL
            study.add_trial(
                optuna.trial.create_trial(
                    params=record["params"], distributions=distributions, value=record.get("value"), state=state
                )
            )
        while len(records) < self.settings.trials:
            trial = study.ask()
            params = {key: trial.suggest_float(key, low, high, log=log) for key, (low, high, log) in space.items()}
            records.append({"params": params, "state": "running"})
            write_json(record_file, records)
            run(len(records) - 1)
            if records[-1]["state"] == "complete":
                study.tell(trial, records[-1]["value"])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
        complete = [(n, r) for n, r in enumerate(records) if r["state"] == "complete"]
        if not complete:
            return None
        number, best = max(complete, key=lambda item: item[1]["value"])
        failed = len(records) - len(complete)
        return {"trial": number, "val": best["value"], "params": best["params"], "failed_trials": failed}

    def trial(self, model: str, number: int, params: dict[str, Any]) -> dict[str, Any]:
        epochs = min(self.settings.search_epochs, self.cfg.trainer.max_epochs)
        output_dir = self.dir / "search" / model / f"trial_{number:03d}"
        try:
            search_only = [f"trainer.max_epochs={epochs}", "test=false"]
            value = self.train_job(output_dir, model, self.cfg.seed, params, search_only, keep_best=False)
        except Exception as e:  # a diverging trial is one result of the search
            log.error("%s trial %d failed: %s", model, number, e)
            return {"state": "failed", "error": f"{type(e).__name__}: {e}"}
        if not math.isfinite(value):
            return {"state": "failed", "error": f"{self.cfg.optimized_metric} is {value}"}
        return {"state": "complete", "value": value}

    # -- 2. retrain -------------------------------------------------------------------------------------------
    def seeds(self) -> list[int]:
        return [self.cfg.seed + 1 + i for i in range(self.settings.seeds)]

    def arms(self) -> dict[str, list[str]]:
        """`study.arms`, the training conditions each architecture's chosen settings are retrained under, by their
        runs' folder tag: clean (as configured), occluded (occluders on `study.occlusion_p` of the training images)."""
        known = {"clean": ("", []), "occluded": (OCCLUSION_ARM, [f"data.occlusion.p={self.settings.occlusion_p}"])}
        unknown = [arm for arm in self.settings.arms if arm not in known]
        if unknown or not self.settings.arms:
            raise ValueError(f"study.arms={list(self.settings.arms)}: expected some of {', '.join(known)}")
        return dict(known[arm] for arm in self.settings.arms)

    def retrain(self, model: str, chosen: dict[str, Any], arm: str) -> None:
        """The architecture's seeds trained (or resumed) with its chosen settings; tested later, in the test pass."""
        for seed in self.seeds():
            output_dir = self.run_dir(model, seed, arm)
            try:
                if read_status(output_dir)["status"] != "ok":
                    extra = [*self.arms()[arm], "test=false"]
                    self.train_job(output_dir, model, seed, chosen["params"], extra, keep_best=True)
            except Exception as e:  # recorded in the run's status.json; the report names it
                log.error("%s%s seed %d failed: %s", model, arm and f" ({arm})", seed, e)

    # -- 3. the test pass ------------------------------------------------------------------------------------
    @property
    def test_protocol(self) -> str:
        """A fingerprint of how runs are tested (the occluded conditions, the scoring resolution): study.rescore
        tests again what was tested otherwise."""
        data = OmegaConf.to_container(self.cfg.data, resolve=True)
        spec = {"occluded_test": data.get("occluded_test"), "eval_resolution": data.get("eval_resolution")}
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
        other_protocol = status["status"] == "ok" and status.get("test_protocol") != self.test_protocol
        return self.untested(output_dir) or (self.settings.rescore and other_protocol)

    def mark_tested(self, output_dir: Path) -> None:
        write_json(output_dir / STATUS_FILE, {**read_status(output_dir), "test_protocol": self.test_protocol})

    def run_dir(self, model: str, seed: int, arm: str = "") -> Path:
        return self.dir / "runs" / f"{model}{arm and f'-{arm}'}-s{seed}"

    @staticmethod
    def arm_label(model: str, arm: str) -> str:
        return f"{model} (occlusion-trained)" if arm else model

    def ensembles(self, models: list[str]) -> list[tuple[str, list[Path], Path]]:
        """(label, member checkpoints, output folder) of every ensemble, equal and fitted weights: each
        architecture's seeds, then the architectures together, one ensemble per seed."""
        best = {}
        for model in models:
            for seed in self.seeds():
                metrics = read_metrics(self.run_dir(model, seed))
                if read_status(self.run_dir(model, seed))["status"] == "ok" and metrics:
                    best[model, seed] = Path(metrics["best_checkpoint"])
        found = []
        for model in models:
            seeds = [s for s in self.seeds() if (model, s) in best]
            if len(seeds) > 1:
                found.append((f"{model} x{len(seeds)} seeds", [best[model, s] for s in seeds], f"{model}-seeds"))
        for seed in self.seeds():
            present = [m for m in models if (m, seed) in best]
            if len(present) > 1:
                found.append(("+".join(present), [best[m, seed] for m in present], f"{'+'.join(present)}-s{seed}"))
        return [
            (f"{label} ({weighting})", members, self.dir / "ensembles" / f"{folder}-{weighting}")
            for label, members, folder in found
            for weighting in ("equal", "fitted")
        ]

    def test_pass(self, models: list[str], arm: str, ensembles: bool) -> None:
        """The arm's runs not tested yet and, with `ensembles`, the ensembles not scored yet, all in one test pass
        (facseg.evaluate.score): each checkpoint predicts each test batch once, for its own run's results and for
        every ensemble it is in. Weights that cannot be fitted fail their ensemble; a failing pass fails the
        ensembles it scores and leaves its runs untested; either is named in the report and the rest go on."""
        runs = [(m, self.run_dir(m, s, arm)) for m in models for s in self.seeds()]
        scorings = [
            Scoring(model, (read_metrics(path)["best_checkpoint"],), None, path, into_run=True)
            for model, path in runs
            if self.to_test(path)
        ]
        todo = (
            [e for e in self.ensembles(models) if read_status(e[2])["status"] != "ok" or self.to_test(e[2])]
            if ensembles
            else []
        )
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
            results = self.score(scorings)
        except Exception as e:
            log.error("the test pass failed: %s", e)
            for scoring in scorings:
                if not scoring.into_run:
                    self.ensemble_failed(scoring.name, scoring.output_dir, e)
            return
        for scoring, metrics in zip(scorings, results):
            if scoring.into_run:
                self.mark_tested(scoring.output_dir)
                headline = [f"{k} {100 * metrics[k]:.1f}" for k in ("test/f1_fg", "occluded/f1_fg") if metrics.get(k)]
                log.info("%s: mean F1 %s", scoring.output_dir.name, ", ".join(headline))
            else:
                write_json(scoring.output_dir / STATUS_FILE, {"status": "ok", "test_protocol": self.test_protocol})

    @staticmethod
    def ensemble_failed(label: str, output_dir: Path, error: Exception) -> None:
        log.error("ensemble %s failed: %s", label, error)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / STATUS_FILE, failed_status(error))

    def evaluate_config(self, overrides: list[str]) -> DictConfig:
        """facseg.evaluate's config with the study's data (as the runs were trained: an experiment preset's too),
        device and logger overrides."""
        kept = ("trainer.accelerator", "trainer.devices", "trainer.precision")
        own = [o for o in self.overrides if _key(o) in kept or _key(o).lstrip("~+").split(".")[0] == "logger"]
        cfg = self.compose("evaluate", [*own, *overrides])
        with open_dict(cfg):
            cfg.data = OmegaConf.create(OmegaConf.to_container(self.cfg.data, resolve=True))
        return cfg

    def score(self, scorings: list[Scoring]) -> list[dict]:
        """Checkpoints and ensembles scored in one test pass (facseg.evaluate.score), with the study's W&B group."""
        cfg = self.evaluate_config([f"group={self.name}"])
        with open_dict(cfg):
            cfg.seed = self.cfg.seed
            if "wandb" in (cfg.get("logger") or {}):
                cfg.logger.wandb.job_type = "study"
        return score(cfg, scorings)

    @torch.no_grad()
    def validation_log_probs(self, paths: list[Path]) -> dict[Path, torch.Tensor]:
        """Each checkpoint's log probability of the true class at every `fit_stride`-th pixel row and column of the
        validation crops, all checkpoints in one pass over the split (they were trained alike: one crop for all)."""
        modules = [load(str(p)).eval() for p in paths]
        settings = checkpoint_settings([str(p) for p in paths], modules)
        data = data_config(self.evaluate_config([]).data, settings, str(paths[0]))
        datamodule = hydra.utils.instantiate(data, target_labels=settings["labels"])
        datamodule.prepare_data()
        datamodule.setup("validate")
        stride, out = self.settings.fit_stride, {p: [] for p in paths}
        for batch in datamodule.val_dataloader():
            labels = batch["label"][:, ::stride, ::stride]
            scored = labels != IGNORE
            for path, module in zip(paths, modules):
                log_probs = module(batch["image"]).log_softmax(1)[:, :, ::stride, ::stride]
                out[path].append(log_probs.gather(1, labels.where(scored, 0)[:, None])[:, 0][scored])
        return {path: torch.cat(values) for path, values in out.items()}

    # -- the whole study --------------------------------------------------------------------------------------
    def timed(self, phase: str, work, *args) -> Any:
        """work(*args), its time added to the phase's in study.json (so a resumed study counts every session)."""
        start = time.perf_counter()
        try:
            return work(*args)
        finally:
            seconds = self.state["seconds"]
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start
            write_json(self.dir / STATE_FILE, self.state)

    def run(self) -> Path:
        models = list(self.settings.models)
        chosen = read_json(self.dir / CHOSEN_FILE) or {}
        if self.settings.report_only:
            models = [m for m in models if m in chosen]
        else:
            for model in models:
                if model not in chosen:
                    chosen[model] = self.timed("search", self.search, model)
                    write_json(self.dir / CHOSEN_FILE, chosen)
            trained = [m for m in models if chosen[m] is not None]
            for n, arm in enumerate(self.arms()):  # the first arm with the ensembles, then the other arms
                for model in trained:
                    self.timed("retrain", self.retrain, model, chosen[model], arm)
                self.timed("test", self.test_pass, trained, arm, n == 0 and self.settings.ensembles)
        report = self.timed("report", self.write_report, models, chosen)
        total = sum(self.state["seconds"].values())
        print(f"study finished in {total / 60:.1f} minutes ({self.durations()}): {report}")
        failed = [f"{m} (every trial)" for m in models if chosen[m] is None]
        folders = [self.run_dir(m, s, a) for m in models if chosen[m] for a in self.arms() for s in self.seeds()]
        folders += [path for _, _, path in self.ensembles(models)] if self.settings.ensembles else []
        failed += [path.name for path in folders if read_status(path)["status"] != "ok" and path.is_dir()]
        failed += [f"{path.name} (untested)" for path in folders if self.untested(path)]
        if failed:  # the others finished and are in the report; the command still says that something failed
            log.error("failed: %s (the report names the errors; rerun the command to retry them)", ", ".join(failed))
            sys.exit(1)
        return report

    def durations(self) -> str:
        return ", ".join(f"{phase} {seconds / 60:.1f} min" for phase, seconds in self.state["seconds"].items())

    def write_report(self, models: list[str], chosen: dict[str, Any]) -> Path:
        jobs = []
        for arm in self.arms():
            for model in models:
                for seed in self.seeds():
                    path = self.run_dir(model, seed, arm)
                    if self.untested(path):  # its test pass failed: named, as a failed run is
                        error = "trained, not tested: its test pass failed or was cut short (study.log); rerun"
                        job = reporting.Job(name=path.name, path=path, status="failed", label="", error=error)
                    elif path.is_dir():
                        job = reporting.load_job(path)
                    else:
                        continue
                    job.label = self.arm_label(model, arm)
                    jobs.append(job)
        for _, _, path in self.ensembles(models):
            if path.is_dir():
                job = reporting.load_job(path)
                job.label = job.metrics.get("model", job.name) if job.metrics else job.name
                jobs.append(job)
        for model in models:
            if chosen.get(model) is None:
                failed = reporting.Job(
                    name=f"{model} search", path=self.dir / "search" / model, status="failed", label=model
                )
                failed.error = f"every one of its {self.settings.trials} trials failed (see search/{model}/)"
                jobs.append(failed)
        return reporting.write_report(
            self.dir,
            jobs=jobs,
            title=f"Study `{self.name}`: {', '.join(models)}, the same tuning budget each",
            sections=[self.tuning_section(chosen, jobs), self.ensemble_section(jobs)],
            compared=models,
            arms=[(self.arm_label(m, OCCLUSION_ARM), m) for m in models] if len(self.arms()) > 1 else [],
        )

    def tuning_section(self, chosen: dict[str, Any], jobs: list[reporting.Job]) -> str:
        s = self.settings
        epochs = min(s.search_epochs, self.cfg.trainer.max_epochs)
        space = ", ".join(
            f"`{k}` in [{r.low:g}, {r.high:g}]{' (log)' if r.get('log') else ''}" for k, r in s.space.items()
        )
        lines = [
            "## Tuning: the same budget for each architecture",
            "",
            f"Optuna (TPE, sampler seed {s.sampler_seed}), {s.trials} trials of {epochs} epochs per architecture, "
            f"seed {self.cfg.seed}, scored on `{self.cfg.optimized_metric}` (validation only); the chosen settings "
            f"retrained with seeds {', '.join(map(str, self.seeds()))} for {self.cfg.trainer.max_epochs} epochs. "
            f"Space: {space}. Chosen settings (also in `{CHOSEN_FILE}`):",
            "",
            "| model | trial | val score | failed trials | " + " | ".join(f"`{k}`" for k in s.space) + " |",
            "|---|---|---|---|" + "---|" * len(s.space),
        ]
        for model, best in chosen.items():
            if best is None:
                lines.append(f"| {model} | every trial failed | | | " + " | " * len(s.space))
                continue
            params = " | ".join(f"{best['params'][k]:.3g}" for k in s.space)
            lines.append(
                f"| {model} | {best['trial']} | {100 * best['val']:.1f} | {best['failed_trials']} | {params} |"
            )
        device = next((j.metrics["cost/device"] for j in jobs if "cost/device" in j.metrics), "this machine")
        lines += ["", f"Time on {device}: {self.durations()}.", ""]
        return "\n".join(lines)

    def ensemble_section(self, jobs: list[reporting.Job]) -> str:
        fitted = [j for j in jobs if j.metrics and j.metrics.get("weights") and "(fitted)" in j.label]
        if not fitted:
            return ""
        lines = [
            "## Ensembles",
            "",
            "Rows `A x N seeds`: one architecture's seeds together; `A+B+C`: the architectures together, one "
            "ensemble per retrained seed (the seeds column counts them). The mean of the members' softmax "
            "probabilities, each member warped onto the photo first; `(fitted)`: weights that maximise the "
            "likelihood of the validation pixels (never test):",
            "",
            "| ensemble | members | fitted weights |",
            "|---|---|---|",
        ]
        for job in fitted:
            members = ", ".join(Path(p).parts[-3] for p in job.metrics["checkpoints"])
            weights = ", ".join(f"{w:.2f}" for w in job.metrics["weights"])
            lines.append(f"| {job.label} | {members} | {weights} |")
        return "\n".join([*lines, ""])


def _float_distribution(low: float, high: float, log: bool):
    """A float range as this Optuna version names it (FloatDistribution from 3.0; 2.x: (Log)UniformDistribution)."""
    distributions = optuna.distributions
    if hasattr(distributions, "FloatDistribution"):
        return distributions.FloatDistribution(low, high, log=log)
    return distributions.LogUniformDistribution(low, high) if log else distributions.UniformDistribution(low, high)


def _key(override: str) -> str:
    return override.split("=", 1)[0]


@hydra.main(version_base="1.3", config_path="conf", config_name="study")
def main(cfg: DictConfig) -> None:
    hydra_cfg = HydraConfig.get()
    directory = Path(hydra_cfg.sweep.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    overrides = OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False)
    Study(cfg, directory, overrides).run()


if __name__ == "__main__":
    main()
