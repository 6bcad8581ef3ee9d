"""A run's record: the files a run (or job) directory holds, and the one module that writes and reads them. Light:
JSON and NumPy, no torch. Nothing else writes these files, and nothing reads one back to rewrite it.

A run directory holds:
- `metrics.json`: the model, the data and protocol, the best validation metric, every test metric.
- `status.json`: `ok`, or `failed` with the error and its traceback; none while running or if killed. A study adds
  the fingerprint of the test protocol its runs and ensembles were tested under.
- `confusion.json`: the pooled test confusion matrices (rows: truth, columns: prediction), clean and occluded.
- `per_image.npz`: per test image and stage, its confusion matrix, squared error and pixel count (`STAGE/KEY`),
  and the image `names`: what intervals over images and paired tests resample.
- `samples.npz`: the first test images as crops, with truth and prediction, clean and occluded (`STAGE/KEY`).
- `cost.json`: parameters, GFLOPs and inference latency of the net (timings vary; metrics.json stays exact).
- `provenance.json`: what produced the numbers, per stage (`training`, `test`): package versions, the lock's
  digest, the precision, the device, its measured speed, the seconds (facseg.runtime.provenance).
- `wandb_id.txt`: the id of the run's W&B run, which a resumed run (and a study's later test) continues.

A sweep directory holds one such directory per job (Hydra names them NUM_NAME) and `summary.json`.
"""

from __future__ import annotations

import json
import secrets
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from facseg.runtime.atomic import update_json, write_json, write_npz

METRICS_FILE, STATUS_FILE, SUMMARY_FILE = "metrics.json", "status.json", "summary.json"
CONFUSION_FILE, PER_IMAGE_FILE, SAMPLES_FILE, COST_FILE = "confusion.json", "per_image.npz", "samples.npz", "cost.json"
PROVENANCE_FILE = "provenance.json"
WANDB_ID_FILE = "wandb_id.txt"
# The keys of metrics.json that a test writes: the clean split, every occluded condition, the ceiling, the natural
# subsets. A run tested again keeps its other keys (model, seed, validation score, checkpoint).
RESULT_PREFIXES = ("test/", "occluded", "ceiling/", "natural")


# -- reading ---------------------------------------------------------------------------------------------------
def read_json(path: Path) -> Any | None:
    """The file's JSON, or None when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def read_status(run_dir: Path) -> dict[str, Any]:
    """status.json; a job still running (parallel launchers) or killed outright (out of memory, SIGKILL) has none."""
    return read_json(Path(run_dir) / STATUS_FILE) or {
        "status": "unfinished",
        "error": "no status.json: still running, or killed",
    }


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / METRICS_FILE)


def read_cost(run_dir: Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / COST_FILE) or {}


def read_provenance(run_dir: Path) -> dict[str, Any]:
    """Per stage (`training`, `test`), what produced it; {} for a run recorded before it was kept."""
    return read_json(Path(run_dir) / PROVENANCE_FILE) or {}


def read_confusion(run_dir: Path) -> dict[str, Any]:
    """confusion.json: `classes`, `aligned_by` and one pooled matrix (nested lists) per stage; {} when absent."""
    return read_json(Path(run_dir) / CONFUSION_FILE) or {}


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """An .npz result file as a dict of arrays; empty when there is no such file."""
    if not path.is_file():
        return {}
    with np.load(path) as arrays:
        return dict(arrays)


def read_per_image(run_dir: Path) -> dict[str, np.ndarray]:
    return read_arrays(Path(run_dir) / PER_IMAGE_FILE)


def read_samples(run_dir: Path) -> dict[str, np.ndarray]:
    return read_arrays(Path(run_dir) / SAMPLES_FILE)


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job folders, in job order (Hydra names them NUM_...)."""
    jobs = [p for p in Path(sweep_dir).iterdir() if (p / ".hydra").is_dir()]
    return sorted(jobs, key=lambda p: int(p.name.split("_", 1)[0]) if p.name.split("_", 1)[0].isdigit() else 1 << 30)


# -- writing ---------------------------------------------------------------------------------------------------
def failed_status(error: BaseException, **extra: Any) -> dict[str, Any]:
    """The status of a job that raised `error`; called in its `except` block, so the traceback is its own."""
    message = f"{type(error).__name__}: {error}"
    return {"status": "failed", **extra, "error": message, "traceback": traceback.format_exc()}


def write_status(run_dir: Path, status: dict[str, Any]) -> None:
    """status.json: {"status": "ok", ...}, or a failed_status()."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_json(Path(run_dir) / STATUS_FILE, status)


def mark_tested(run_dir: Path, protocol: str) -> None:
    """The run's status records that it was tested under the test protocol with this fingerprint (facseg.study)."""
    write_status(run_dir, {**read_status(run_dir), "test_protocol": protocol})


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> None:
    write_json(Path(run_dir) / METRICS_FILE, metrics)


def write_test_metrics(run_dir: Path, metrics: dict[str, Any], into_run: bool) -> dict[str, Any]:
    """metrics.json of a scoring (facseg.scoring.onepass); `into_run`: the run's own keys (its model, seed,
    validation score, checkpoint) are kept and the test's results (RESULT_PREFIXES) replace an earlier test's.
    Returns what was written."""
    if into_run:
        run = read_metrics(run_dir) or {}
        metrics = {
            **{k: v for k, v in run.items() if not k.startswith(RESULT_PREFIXES)},
            **{k: v for k, v in metrics.items() if k.startswith(RESULT_PREFIXES)},
        }
    write_metrics(run_dir, metrics)
    return metrics


def write_provenance(run_dir: Path, stage: str, record: dict[str, Any]) -> None:
    """What produced this stage of the run (a later test replaces an earlier test's, the training's stays)."""
    update_json(Path(run_dir) / PROVENANCE_FILE, lambda found: found.update({stage: record}))


def write_cost(run_dir: Path, cost: dict[str, Any]) -> None:
    write_json(Path(run_dir) / COST_FILE, cost)


def write_test_files(
    run_dir: Path,
    classes: list[str],
    confusion: dict[str, np.ndarray],
    aligned_by: dict[str, dict[str, int]],
    names: list[str],
    per_image: dict[str, dict[str, np.ndarray]],
    samples: dict[str, dict[str, np.ndarray]],
) -> None:
    """confusion.json (the pooled matrices of the test loaders' stages), per_image.npz and samples.npz."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    pooled = {stage: matrix.tolist() for stage, matrix in confusion.items()}
    write_json(run_dir / CONFUSION_FILE, {"classes": classes, **pooled, "aligned_by": aligned_by})

    def arrays():  # one at a time: a stage's counts are read from their spool as they are written
        yield from (("names", np.array(names)), ("classes", np.array(classes)))
        for stage, kept in per_image.items():
            for key, value in kept.items():
                # Counts in the narrowest integer type that holds them: a LaPa split is 2,000 matrices.
                narrow = value.astype(np.min_scalar_type(value.max(initial=0))) if value.dtype.kind == "i" else value
                yield f"{stage}/{key}", narrow

    write_npz(run_dir / PER_IMAGE_FILE, arrays())
    write_npz(run_dir / SAMPLES_FILE, {f"{s}/{k}": v for s, kept in samples.items() for k, v in kept.items()})


def wandb_run_id(run_dir: Path, create: bool = False) -> str | None:
    """The id of the run's W&B run (wandb_id.txt); `create`: a new one when it has none. None: none recorded."""
    id_file = Path(run_dir) / WANDB_ID_FILE
    if create and not id_file.is_file():
        id_file.write_text(secrets.token_hex(6))
    return id_file.read_text().strip() if id_file.is_file() else None


def write_summary(sweep_dir: Path, summary: dict[str, Any]) -> None:
    write_json(Path(sweep_dir) / SUMMARY_FILE, summary)
