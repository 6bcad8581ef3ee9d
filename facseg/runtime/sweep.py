"""Sweeps that survive a failed job: each job records its outcome, the sweep summarises them and fails loudly.

A failing job writes its error and traceback to its `status.json` (facseg.run, through facseg.runtime.record) and
raises; Hydra's launchers catch a job's exception and run the other jobs. After every job, `summary.json` in the sweep
directory is rewritten with every job so far (overrides, status, error, test metrics) and a failure is logged with the
job's name. Hydra's basic sweeper then exits non-zero; a search (Optuna) records the trial as failed and goes on.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from facseg.runtime.record import job_dirs, read_metrics, read_status, write_summary

log = logging.getLogger(__name__)


def summarise(sweep_dir: Path) -> dict[str, Any]:
    jobs = [{"job": job.name, **read_status(job), "metrics": read_metrics(job)} for job in job_dirs(sweep_dir)]
    return {"jobs": jobs, "failed": [j["job"] for j in jobs if j["status"] != "ok"]}


class SweepSummary(Callback):
    """`fail_on_error`: exit non-zero when a job failed (a search may rather treat failed trials as results)."""

    def __init__(self, fail_on_error: bool = True) -> None:
        self.fail_on_error = fail_on_error

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            return
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = summarise(sweep_dir)
        write_summary(sweep_dir, summary)
        if job_return.status == JobStatus.FAILED:
            name = Path(config.hydra.runtime.output_dir).name
            error = next((j.get("error") for j in summary["jobs"] if j["job"] == name), None)
            log.error("job %s failed: %s; failed so far: %s", name, error, ", ".join(summary["failed"]))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Reached when the sweeper did not raise: all jobs succeeded, or a search that tolerates failed trials.
        summary = summarise(Path(config.hydra.sweep.dir))
        if summary["failed"] and self.fail_on_error:
            log.error(
                "%d of %d jobs failed: %s", len(summary["failed"]), len(summary["jobs"]), ", ".join(summary["failed"])
            )
            sys.exit(1)
