"""The study from start to end: search, retrain, test pass, report, each phase timed in DIR/study.json and skipped
where it finished (facseg.study's docstring says what each phase does)."""

from __future__ import annotations

import logging
import statistics
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from facseg import report
from facseg.runtime.atomic import claimed, locked, update_json
from facseg.runtime.provenance import package_versions
from facseg.runtime.record import read_json, read_status
from facseg.runtime.speed import machine_speed
from facseg.study.jobs import StudyJobs
from facseg.study.plan import CHOSEN_FILE, OCCLUSION_ARM, STATE_FILE, StudyPlan
from facseg.study.search import Search, search_space
from facseg.study.sections import ensemble_section, tuning_section
from facseg.study.testpass import StudyTestPass

log = logging.getLogger(__name__)


class Study:
    def __init__(self, cfg: DictConfig, directory: Path, overrides: list[str]) -> None:
        self.plan = StudyPlan(cfg, directory)
        self.settings = cfg.study
        self.space = search_space(cfg)
        self.jobs = StudyJobs(self.plan, overrides, searched=set(self.space))
        self.precision = self.jobs.pin_precision(list(cfg.study.models))
        self.search = Search(self.plan, self.jobs)
        self.test_pass = StudyTestPass(self.plan, self.jobs)
        self.state = read_json(directory / STATE_FILE) or {"seconds": {}}

    def record(self, change) -> None:
        """`change` applied to study.json as it is on disk: processes that work on one study folder at once each keep
        the others' times and machines."""
        self.state = update_json(self.plan.dir / STATE_FILE, change, empty=lambda: {"seconds": {}})

    def retrain(self, model: str, chosen: dict[str, Any], arm: str) -> list[Path]:
        """The architecture's seeds trained (or resumed) with its chosen settings; tested later, in the test pass.
        Each run is claimed while it trains (a lock beside its folder), so processes started with the same command on
        one study folder share the runs. Returns the runs other processes hold: wait_for them before testing."""
        elsewhere = []
        for seed in self.plan.seeds():
            output_dir = self.plan.run_dir(model, seed, arm)
            with claimed(claim_file(output_dir)) as mine:
                if not mine:
                    elsewhere.append(output_dir)
                    continue
                if read_status(output_dir)["status"] == "ok":
                    continue
                start = time.perf_counter()
                try:
                    extra = [*self.plan.arms()[arm], "test=false"]
                    self.jobs.train(output_dir, model, seed, chosen["params"], extra, keep_best=True)
                except Exception as e:  # recorded in the run's status.json; the report names it
                    log.error("%s%s seed %d failed: %s", model, arm and f" ({arm})", seed, e)
                finally:  # each run's training time, over every session that trained it: what a run costs here
                    self.record(partial(add, "runs", output_dir.name, time.perf_counter() - start))
        return elsewhere

    def search_all(self, models: list[str], chosen: dict[str, Any]) -> None:
        """Each architecture's search not finished yet into `chosen` (and chosen.json): first those no other process
        is searching, then, waiting for them, the others' picks (searched here if their process stopped short)."""
        waiting = []
        for model in models:
            if model not in chosen:
                with claimed(self.plan.dir / f".search-{model}.claim") as mine:
                    if mine:
                        self.search_one(model, chosen)
                    else:
                        waiting.append(model)
        for model in waiting:
            with locked(self.plan.dir / f".search-{model}.claim"):
                self.search_one(model, chosen)

    def search_one(self, model: str, chosen: dict[str, Any]) -> None:
        chosen.update(read_json(self.plan.dir / CHOSEN_FILE) or {})  # what other processes picked meanwhile
        if model not in chosen:
            picked = {model: self.timed("search", self.search.run, model)}
            chosen.update(picked)  # and on disk, beside what other processes' searches picked
            update_json(self.plan.dir / CHOSEN_FILE, lambda on_disk: on_disk.update(picked))

    def same_numerics(self) -> None:
        """A study compares its runs with each other: they are all made in one precision with one set of the library
        versions that move numbers. The first session records them in study.json; a later one with others is
        refused before it trains or tests anything."""
        here = {"precision": self.precision, **package_versions()}
        recorded = self.state.get("numerics")
        if recorded is None:
            self.record(lambda state: state.setdefault("numerics", here))
            return
        differ = [key for key in {**recorded, **here} if recorded.get(key) != here.get(key)]
        if differ:
            raise ValueError(
                f"{self.plan.dir}: its runs were made with "
                + ", ".join(f"{key} {recorded.get(key)}" for key in differ)
                + "; this session would make them with "
                + ", ".join(f"{key} {here.get(key)}" for key in differ)
                + ": resume it with the same precision and `make install`'s lock, or start another study folder"
            )

    def timed(self, phase: str, work, *args) -> Any:
        """work(*args), its time added to the phase's in study.json (so a resumed study counts every session)."""
        start = time.perf_counter()
        try:
            return work(*args)
        finally:
            self.record(partial(add, "seconds", phase, time.perf_counter() - start))

    def run(self) -> Path:
        plan = self.plan
        models = list(self.settings.models)
        chosen = read_json(plan.dir / CHOSEN_FILE) or {}
        if self.settings.report_only:
            models = [m for m in models if m in chosen]
        else:  # the machine of each session that works on the study, beside the times it adds (make bench-ref)
            self.same_numerics()
            session = {"started": datetime.now().isoformat(timespec="seconds"), **machine_speed()}
            self.record(lambda state: state.setdefault("machines", []).append(session))
            self.search_all(models, chosen)
            trained = [m for m in models if chosen[m] is not None]
            for n, arm in enumerate(plan.arms()):  # the first arm with the ensembles, then the other arms
                wait_for([path for m in trained for path in self.timed("retrain", self.retrain, m, chosen[m], arm)])
                with locked(plan.dir / ".test.claim"):  # one test pass at a time; the next finds the runs tested
                    self.timed("test", self.test_pass.run, trained, arm, n == 0 and self.settings.ensembles)
        written = self.timed("report", self.write_report, models, chosen)
        total = sum(self.state["seconds"].values())
        print(f"study finished in {total / 60:.1f} minutes ({durations(self.state)}): {written}")
        failed = [f"{m} (every trial)" for m in models if chosen[m] is None]
        folders = [plan.run_dir(m, s, a) for m in models if chosen[m] for a in plan.arms() for s in plan.seeds()]
        folders += [path for _, _, path in plan.ensembles(models)] if self.settings.ensembles else []
        failed += [path.name for path in folders if read_status(path)["status"] != "ok" and path.is_dir()]
        failed += [f"{path.name} (untested)" for path in folders if self.test_pass.untested(path)]
        if failed:  # the others finished and are in the report; the command still says that something failed
            log.error("failed: %s (the report names the errors; rerun the command to retry them)", ", ".join(failed))
            sys.exit(1)
        return written

    def write_report(self, models: list[str], chosen: dict[str, Any]) -> Path:
        plan = self.plan
        jobs = []
        for arm in plan.arms():
            for model in models:
                for seed in plan.seeds():
                    path = plan.run_dir(model, seed, arm)
                    label = plan.arm_label(model, arm)
                    if self.test_pass.untested(path):  # its test pass failed: named, as a failed run is
                        error = "trained, not tested: its test pass failed or was cut short (study.log); rerun"
                        jobs.append(report.Job(name=path.name, path=path, status="failed", label=label, error=error))
                    elif path.is_dir():
                        jobs.append(report.load_job(path, label))
        jobs += [report.load_job(path) for _, _, path in plan.ensembles(models) if path.is_dir()]
        for model in models:
            if chosen.get(model) is None:
                error = f"every one of its {self.settings.trials} trials failed (see search/{model}/)"
                path = plan.dir / "search" / model
                jobs.append(report.Job(name=f"{model} search", path=path, status="failed", label=model, error=error))
        return report.write_report(
            plan.dir,
            jobs=jobs,
            title=f"Study `{plan.name}`: {', '.join(models)}, the same tuning budget each",
            sections=[tuning_section(plan, self.space, chosen, jobs, durations(self.state)), ensemble_section(jobs)],
            compared=models,
            arms=[(plan.arm_label(m, OCCLUSION_ARM), m) for m in models] if len(plan.arms()) > 1 else [],
        )


def claim_file(output_dir: Path) -> Path:
    """The lock a run is claimed by, beside its folder."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    return output_dir.with_name(f".{output_dir.name}.claim")


def wait_for(runs: list[Path]) -> None:
    """Until the processes that hold these runs' claims are done with them (trained or failed)."""
    for output_dir in runs:
        with locked(claim_file(output_dir)):
            pass


def add(key: str, name: str, seconds: float, state: dict[str, Any]) -> None:
    """Seconds added to study.json's state[key][name]."""
    times = state.setdefault(key, {})
    times[name] = times.get(name, 0.0) + seconds


def durations(state: dict[str, Any]) -> str:
    """Each phase's minutes (study.json), and a run's training: the median over each configuration's runs (their
    names less the seed), as a slow spell of a shared machine stretches one run, not the median."""
    phases = ", ".join(f"{phase} {seconds / 60:.1f} min" for phase, seconds in state["seconds"].items())
    minutes: dict[str, list[float]] = {}
    for name, seconds in state.get("runs", {}).items():
        minutes.setdefault(name.rsplit("-s", 1)[0], []).append(seconds / 60)
    if minutes:
        runs = ", ".join(f"{name} {statistics.median(m):.1f}" for name, m in minutes.items())
        phases += f"; a run's training, median minutes: {runs}"
    speeds = [m["matmul_2048_float32_gflops"] for m in state.get("machines", [])]
    if speeds:
        speed = f"{min(speeds):.0f}" if min(speeds) == max(speeds) else f"{min(speeds):.0f}-{max(speeds):.0f}"
        processes = f"the {len(speeds)} processes" if len(speeds) > 1 else "the process"
        phases += f"; the CPU's matrix product at {speed} GFLOP/s (make bench-ref), measured by {processes} that ran it"
    return phases + (f" (`{STATE_FILE}`)" if minutes or speeds else "")
