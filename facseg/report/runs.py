"""The runs a report compares, loaded from their run directories (facseg.runtime.record): a sweep's jobs or a
study's runs and ensembles, grouped by configuration (jobs that differ only in their seed)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from facseg import PROJECT_ROOT
from facseg.data.labels import LabelMap
from facseg.runtime.record import (
    METRICS_FILE,
    job_dirs,
    read_confusion,
    read_cost,
    read_metrics,
    read_per_image,
    read_provenance,
    read_samples,
    read_status,
)


@dataclass(frozen=True)
class Job:
    """One run's record as the report reads it; `label` names its configuration (the rows of the tables)."""

    name: str
    path: Path
    status: str
    label: str  # the model, plus the overrides that set this job apart from the others but for the seed
    error: str | None = None
    overrides: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # metrics.json plus cost.json as cost/...
    confusion: dict[str, np.ndarray] = field(default_factory=dict)
    per_image: dict[str, np.ndarray] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # per stage, what produced it (provenance.json)


def load_job(path: Path, label: str | None = None) -> Job:
    """The run in `path`; `label`: its configuration's name (default: the model it records, else its `model=`)."""
    status = read_status(path)
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    metrics = read_metrics(path)
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), path.name)
    job = Job(
        name=path.name,
        path=path,
        status=status["status"],
        label=label or (metrics["model"] if metrics else model),
        error=status.get("error"),
        overrides=[o for o in overrides if not o.startswith(("model=", "seed="))],
    )
    if metrics is None:
        return replace(job, status="failed", error="finished without metrics.json") if job.status == "ok" else job
    cost = read_cost(path)
    confusion = read_confusion(path)
    return replace(
        job,
        metrics={**metrics, **{f"cost/{k}": v for k, v in cost.items()}, "aligned_by": confusion.get("aligned_by", {})},
        confusion={k: np.array(v) for k, v in confusion.items() if k not in ("classes", "aligned_by")},
        per_image=read_per_image(path),
        samples=read_samples(path),
        provenance=read_provenance(path),
    )


def newest_sweep() -> Path | None:
    """The most recently written sweep directory under the project's logs/multiruns, if any."""
    sweeps = sorted((PROJECT_ROOT / "logs" / "multiruns").glob("*/multirun.yaml"), key=lambda p: p.stat().st_mtime)
    return sweeps[-1].parent if sweeps else None


def load_sweep(directory: Path | str) -> list[Job]:
    """Every job of a sweep directory, in job order; a single run's directory gives one job."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: no such directory (give a sweep or run directory under logs/)")
    paths = job_dirs(directory) or ([directory] if (directory / METRICS_FILE).is_file() else [])
    if not paths:
        raise FileNotFoundError(
            f"{directory} holds no jobs: expected a sweep directory (NUM_NAME/ folders with "
            ".hydra/) or a run directory with metrics.json"
        )
    jobs = [load_job(p) for p in paths]
    compared = [job for job in jobs if job.metrics] or jobs  # failed jobs are named by their folder anyway
    shared = set.intersection(*(set(job.overrides) for job in compared))
    return [replace(job, label=" ".join([job.label, *(o for o in job.overrides if o not in shared)])) for job in jobs]


def label_map(jobs: list[Job]) -> LabelMap:
    """The class set the jobs were scored in (metrics.json `labels`; runs that predate it: LaPa's)."""
    for job in jobs:
        if job.metrics.get("labels"):
            return LabelMap.from_config(job.metrics["labels"])
    return LabelMap.named("lapa")


def mean_f1_classes(jobs: list[Job]) -> list[str]:
    """The classes of the headline mean F1, in id order: the per-class tables' and figures' columns."""
    return list(label_map(jobs).mean_f1)


def groups(jobs: list[Job]) -> dict[str, list[Job]]:
    """Finished jobs by label: the seeds of one configuration together, in order of first appearance."""
    out: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status == "ok" and job.metrics:
            out.setdefault(job.label, []).append(job)
    return out


def finite_values(runs: list[Job], key: str) -> list[float]:
    values = [run.metrics.get(key) for run in runs]
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_std(runs: list[Job], key: str) -> tuple[float, float] | None:
    values = finite_values(runs, key)
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
