"""Sweeps that survive a failed job: each job records its outcome, the sweep summarises them and fails loudly.

A job's exception is caught in the job (facseg.run), written to its `status.json` with the traceback, and the
sweep moves on. At the end `summary.json` in the sweep directory lists every job (overrides, status, error,
test metrics), the failed ones are named in the log, and the process exits non-zero if any failed.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from facseg.io import write_json

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
SUMMARY_FILE = "summary.json"


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, in job order (Hydra names them NUM_...)."""
    jobs = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: int(p.name.split("_", 1)[0]) if p.name.split("_", 1)[0].isdigit() else 1 << 30)


def summarise(sweep_dir: Path) -> dict[str, Any]:
    jobs = []
    for job in job_dirs(sweep_dir):
        status_path = job / STATUS_FILE
        # A job killed outright (out of memory, SIGKILL) never wrote its status.
        status = (
            json.loads(status_path.read_text())
            if status_path.is_file()
            else {"status": "failed", "error": "no status.json: killed?"}
        )
        metrics_path = job / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        jobs.append({"job": job.name, **status, "metrics": metrics})
    return {"jobs": jobs, "failed": [j["job"] for j in jobs if j["status"] != "ok"]}


class SweepSummary(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        summary = summarise(sweep_dir)
        write_json(sweep_dir / SUMMARY_FILE, summary)
        if summary["failed"]:
            for job in summary["jobs"]:
                if job["status"] != "ok":
                    log.error("job %s failed: %s", job["job"], job.get("error"))
            log.error("%d of %d jobs failed (%s); details in %s", len(summary["failed"]), len(summary["jobs"]),
                      ", ".join(summary["failed"]), sweep_dir / SUMMARY_FILE)  # fmt: skip
            sys.exit(1)
