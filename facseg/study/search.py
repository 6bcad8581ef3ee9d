"""The same tuning budget for each architecture: one Optuna search per architecture over the one search space
(`search_space` in conf/train.yaml, which `hparams_search=optuna` sweeps too), scored on validation only.

Each trial is recorded in DIR/search/MODEL/trials.json before it runs and when it ends; a resumed search asks and
tells the sampler the recorded trials again, in order (so it goes on drawing as an uninterrupted search does), and
reruns an interrupted one with its own settings (in its folder, so from its last checkpoint). No database: Optuna's
RDB storage needs a matching SQLAlchemy.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep
from omegaconf import DictConfig

from facseg.runtime.atomic import write_json
from facseg.runtime.record import read_json
from facseg.study.jobs import StudyJobs
from facseg.study.plan import StudyPlan

log = logging.getLogger(__name__)


def search_space(cfg: DictConfig) -> dict[str, tuple[float, float, bool]]:
    """`search_space` (run config key -> Hydra's sweep syntax, `interval(a, b)` or `tag(log, interval(a, b))`) as
    key -> (low, high, log)."""
    parser = OverridesParser.create()
    space = {}
    for key, spec in cfg.search_space.items():
        found = parser.parse_override(f"{key}={spec}").value()
        if not isinstance(found, IntervalSweep) or not found.tags <= {"log"}:
            raise ValueError(
                f"search_space.{key}={spec}: expected interval(LOW, HIGH) or tag(log, interval(LOW, HIGH))"
            )
        space[key] = (float(found.start), float(found.end), "log" in found.tags)
    return space


class Search:
    def __init__(self, plan: StudyPlan, jobs: StudyJobs) -> None:
        self.plan, self.jobs, self.settings = plan, jobs, plan.settings
        self.space = search_space(plan.cfg)

    def run(self, model: str) -> dict[str, Any] | None:
        """The architecture's search, run (or resumed) to `study.trials` finished trials; its best trial."""
        record_file = self.plan.dir / "search" / model / "trials.json"
        record_file.parent.mkdir(parents=True, exist_ok=True)
        records = read_json(record_file) or []
        sampler = optuna.samplers.TPESampler(seed=self.settings.sampler_seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        space = list(self.space.items())

        def run(number: int) -> None:
            records[number].update(self.trial(model, number, records[number]["params"]))
            write_json(record_file, records)

        def next_trial() -> tuple[optuna.trial.Trial, dict[str, float]]:
            trial = study.ask()
            return trial, {key: trial.suggest_float(key, low, high, log=log) for key, (low, high, log) in space}

        def tell(trial: optuna.trial.Trial, record: dict[str, Any]) -> None:
            if record["state"] == "complete":
                study.tell(trial, record["value"])
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)

        # Resumed, the sampler is asked and told again in the recorded order, so that it draws the next trials
        # exactly as an uninterrupted search would (given the recorded trials, a fresh sampler would draw its first
        # trial's settings again).
        for number, record in enumerate(records):
            trial, params = next_trial()
            if params != record["params"]:
                raise ValueError(
                    f"{record_file}: trial {number} ran with {record['params']}, but the sampler now draws {params}: "
                    "the search space or the sampler's seed changed since; start the study in a new folder"
                )
            if record["state"] == "running":  # killed mid-run
                run(number)
            tell(trial, record)
        while len(records) < self.settings.trials:
            trial, params = next_trial()
            records.append({"params": params, "state": "running"})
            write_json(record_file, records)
            run(len(records) - 1)
            tell(trial, records[-1])
        complete = [(n, r) for n, r in enumerate(records) if r["state"] == "complete"]
        if not complete:
            return None
        number, best = max(complete, key=lambda item: item[1]["value"])
        failed = len(records) - len(complete)
        return {"trial": number, "val": best["value"], "params": best["params"], "failed_trials": failed}

    def trial(self, model: str, number: int, params: dict[str, Any]) -> dict[str, Any]:
        cfg = self.plan.cfg
        epochs = min(self.settings.search_epochs, cfg.trainer.max_epochs)
        output_dir = self.plan.dir / "search" / model / f"trial_{number:03d}"
        try:
            search_only = [f"trainer.max_epochs={epochs}", "test=false"]
            value = self.jobs.train(output_dir, model, cfg.seed, params, search_only, keep_best=False)
        except Exception as e:  # a diverging trial is one result of the search
            log.error("%s trial %d failed: %s", model, number, e)
            return {"state": "failed", "error": f"{type(e).__name__}: {e}"}
        if not math.isfinite(value):
            return {"state": "failed", "error": f"{cfg.optimized_metric} is {value}"}
        return {"state": "complete", "value": value}
