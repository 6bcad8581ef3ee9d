"""The files a run leaves behind, and the one place that reads them back. Light: JSON and NumPy, no torch.

A run (or job) directory holds:
- `metrics.json`: the model, the data and protocol, the best validation metric, every test metric.
- `status.json`: `ok`, or `failed` with the error and its traceback (facseg.run); none while running or if killed.
- `confusion.json`: the pooled test confusion matrices (rows: truth, columns: prediction), clean and occluded.
- `per_image.npz`: per test image and stage, its confusion matrix, squared error and pixel count (`STAGE/KEY`),
  and the image `names`: what intervals over images and paired tests resample.
- `samples.npz`: the first test images as crops, with truth and prediction, clean and occluded (`STAGE/KEY`).
- `cost.json`: parameters, GFLOPs and inference latency of the net (timings vary; metrics.json stays exact).
- `wandb_id.txt`: the id of the run's W&B run, which a resumed run (and a study's later test) continues.

A sweep directory holds one such directory per job (Hydra names them NUM_NAME) and `summary.json`.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import numpy as np

METRICS_FILE, STATUS_FILE, SUMMARY_FILE = "metrics.json", "status.json", "summary.json"
CONFUSION_FILE, PER_IMAGE_FILE, SAMPLES_FILE, COST_FILE = "confusion.json", "per_image.npz", "samples.npz", "cost.json"
WANDB_ID_FILE = "wandb_id.txt"


def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def read_status(job_dir: Path) -> dict[str, Any]:
    """status.json; a job still running (parallel launchers) or killed outright (out of memory, SIGKILL) has none."""
    return read_json(Path(job_dir) / STATUS_FILE) or {
        "status": "unfinished",
        "error": "no status.json: still running, or killed",
    }


def failed_status(error: BaseException, **extra: Any) -> dict[str, Any]:
    """The status.json of a job that raised `error`; called in its `except` block, so the traceback is its own."""
    message = f"{type(error).__name__}: {error}"
    return {"status": "failed", **extra, "error": message, "traceback": traceback.format_exc()}


def read_metrics(job_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(job_dir) / METRICS_FILE)


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """An .npz result file as a dict of arrays; empty when there is no such file."""
    if not path.is_file():
        return {}
    with np.load(path) as arrays:
        return dict(arrays)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, in job order (Hydra names them NUM_...)."""
    jobs = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: int(p.name.split("_", 1)[0]) if p.name.split("_", 1)[0].isdigit() else 1 << 30)
