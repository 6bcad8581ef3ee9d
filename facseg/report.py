"""Turn a sweep (or a single run) directory into a comparison report: report.md plus figures.

    python -m facseg.report logs/multiruns/2026-11-26_10-00-00      (no directory: the newest sweep)

Jobs that differ only in their seed form one row: the mean over the seeds with a 95 % interval from a bootstrap
over seeds and test images (facseg.stats, from each run's per_image.npz), then paired differences between the rows
with permutation p-values, per class Holm-corrected. Failed and unfinished jobs are listed as such. Figures land
in DIR/figures: per-class F1 and IoU bars (clean and occluded), the confusion matrices, and a qualitative grid of
the same test images under every model. The functions below are also what notebooks/compare_models.ipynb calls.
"""

from __future__ import annotations

import argparse
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from matplotlib.figure import Figure  # no pyplot: no global figures, no display backend, on clusters too

from facseg import PROJECT_ROOT
from facseg.data.labels import LabelMap
from facseg.io import write_bytes
from facseg.results import (
    CONFUSION_FILE,
    COST_FILE,
    METRICS_FILE,
    PER_IMAGE_FILE,
    SAMPLES_FILE,
    job_dirs,
    read_arrays,
    read_json,
    read_metrics,
    read_status,
)
from facseg.stats import Bootstrap, Difference, Estimate, Runs, holm, interval, paired

# (column title, stage, metric, scale, digits). A stage of per_image.npz; `drop`: clean minus occluded.
COLUMNS = [
    ("mIoU", "test", "miou", 100, 1),
    ("mean F1", "test", "f1_fg", 100, 1),
    ("pixel acc", "test", "pixel_acc", 100, 2),
    ("pixel acc (crop)", "test/crop", "pixel_acc", 100, 2),
    ("RMSE", "test", "rmse", 1, 4),
    ("RMSE (crop)", "test/crop", "rmse", 1, 4),
    ("occl. mean F1", "occluded", "f1_fg", 100, 1),
    ("F1 drop", "drop", "f1_fg", 100, 1),
    ("hallucinated", "occluded/hidden", "hallucinated", 100, 1),
]
# Where metrics.json keeps each stage's values (runs without per_image.npz are reported as mean +- std of these).
METRICS_PREFIX = {
    "test": "test/",
    "test/crop": "test/crop/",
    "occluded": "occluded/",
    "drop": "occluded/drop/",
    "occluded/hidden": "occluded/inside/",
}
# (column title, cost.json key, scale, digits): the net's cost does not depend on the seed.
COST_COLUMNS = [("params (M)", "params", 1e-6, 2), ("GFLOPs", "gflops", 1, 2), ("ms/image", "ms_per_image", 1, 1)]


@dataclass
class Job:
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


def load_job(path: Path) -> Job:
    status = read_status(path)
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    metrics = read_metrics(path)
    model = next((o.split("=", 1)[1] for o in overrides if o.startswith("model=")), path.name)
    job = Job(
        name=path.name,
        path=path,
        status=status["status"],
        label=metrics["model"] if metrics else model,
        error=status.get("error"),
        overrides=[o for o in overrides if not o.startswith(("model=", "seed="))],
    )
    if metrics is None:
        if job.status == "ok":
            job.status, job.error = "failed", "finished without metrics.json"
        return job
    cost = read_json(path / COST_FILE) or {}
    job.metrics = {**metrics, **{f"cost/{k}": v for k, v in cost.items()}}
    confusion = read_json(path / CONFUSION_FILE) or {}
    job.metrics["aligned_by"] = confusion.get("aligned_by", {})
    job.confusion = {k: np.array(v) for k, v in confusion.items() if k not in ("classes", "aligned_by")}
    job.per_image = read_arrays(path / PER_IMAGE_FILE)
    job.samples = read_arrays(path / SAMPLES_FILE)
    return job


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
    for job in jobs:
        job.label = " ".join([job.label, *(o for o in job.overrides if o not in shared)])
    return jobs


def label_map(jobs: list[Job]) -> LabelMap:
    """The class set the jobs were scored in (metrics.json `labels`; runs that predate it: LaPa's)."""
    for job in jobs:
        if job.metrics.get("labels"):
            return LabelMap.from_config(job.metrics["labels"])
    return LabelMap.named("lapa")


def scored_classes(jobs: list[Job]) -> list[str]:
    """The classes of the headline mean F1, in id order: the per-class tables' and figures' columns."""
    return list(label_map(jobs).mean_f1)


def groups(jobs: list[Job]) -> dict[str, list[Job]]:
    """Finished jobs by label: the seeds of one configuration together, in order of first appearance."""
    out: dict[str, list[Job]] = {}
    for job in jobs:
        if job.status == "ok" and job.metrics:
            out.setdefault(job.label, []).append(job)
    return out


def _values(runs: list[Job], key: str) -> list[float]:
    values = [run.metrics.get(key) for run in runs]
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_std(runs: list[Job], key: str) -> tuple[float, float] | None:
    values = _values(runs, key)
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _cell(runs: list[Job], key: str, scale: float, digits: int) -> str:
    stats = mean_std(runs, key)
    if stats is None:
        return "-"
    mean, std = stats[0] * scale, stats[1] * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(runs) > 1 else f"{mean:.{digits}f}"


class Statistics:
    """Each configuration's metrics with 95 % intervals (facseg.stats: bootstrap over seeds and test images, one
    shared draw of images for the whole report) and paired tests, from the runs' per_image.npz; configurations
    without them are reported as mean ± std over seeds from metrics.json."""

    def __init__(self, jobs: list[Job]) -> None:
        self.groups = groups(jobs)
        self.labels = label_map(jobs)
        self.classes = list(self.labels.names)
        self.mean_f1 = [self.classes.index(c) for c in self.labels.mean_f1]
        # The naturally occluded subsets' mean F1 leaves the occluder classes out (facseg.evaluation)
        self.mean_f1_faces = [i for i in self.mean_f1 if self.classes[i] not in self.labels.occluders]
        tested = [run.per_image for runs in self.groups.values() for run in runs if run.per_image]
        self.images = list(tested[0]["names"]) if tested else []
        self.boot = Bootstrap(len(self.images)) if tested else None
        self._runs: dict[tuple[str, str], Runs | None] = {}

    def runs(self, label: str, stage: str) -> Runs | None:
        """The configuration's seeds at a stage of per_image.npz; None unless every seed has it, on the same images."""
        if (label, stage) not in self._runs:
            arrays = [run.per_image for run in self.groups[label]]
            usable = self.boot is not None and all(
                f"{stage}/confusion" in a and list(a["names"]) == self.images for a in arrays
            )  # runs on other test images (another data set in the sweep) fall back to mean +- std
            self._runs[label, stage] = Runs.stack(arrays, stage) if usable else None
        return self._runs[label, stage]

    def estimate(self, label: str, stage: str, metric: str, minus: str | None = None) -> Estimate | None:
        """The metric at a stage of per_image.npz; with `minus`, the stage minus that stage (same images, seeds).
        `drop`: clean minus the primary occluded condition."""
        if stage == "drop":
            stage, minus = "test", "occluded"
        runs = self.runs(label, stage)
        subtracted = self.runs(label, minus) if minus else None
        if runs is None or (minus and subtracted is None):
            return None
        return interval(self.boot, runs, self.averaged(stage), self.classes, metric, subtracted)

    def averaged(self, stage: str) -> list[int]:
        return self.mean_f1_faces if stage.startswith("natural") else self.mean_f1

    def cell(self, label: str, stage: str, metric: str, scale: float, digits: int, minus: str | None = None) -> str:
        found = self.estimate(label, stage, metric, minus)
        if found is None:
            prefix = METRICS_PREFIX.get(stage)
            return _cell(self.groups[label], prefix + metric, scale, digits) if prefix and not minus else "-"
        return _estimate(found, scale, digits)

    def seeds(self, label: str) -> int:
        found = self.estimate(label, "test", "f1_fg")
        return found.seeds if found else len(_values(self.groups[label], "test/f1_fg"))

    def differences(self, a: str, b: str, keys: list[str], stage: str = "test") -> list[Difference] | None:
        runs = [self.runs(label, stage) for label in (a, b)]
        if any(r is None for r in runs):
            return None
        return paired(self.boot, *runs, self.averaged(stage), self.classes, keys)

    def stages(self) -> list[str]:
        """The stages the runs kept per-image results of (per_image.npz), in their order."""
        tested = next((run.per_image for runs in self.groups.values() for run in runs if run.per_image), {})
        return list(dict.fromkeys(k.rsplit("/", 1)[0] for k in tested if k.endswith("/confusion")))


def _estimate(found: Estimate, scale: float, digits: int) -> str:
    if not np.isfinite(found.mean):
        return "-"
    return f"{found.mean * scale:.{digits}f} [{found.low * scale:.{digits}f}, {found.high * scale:.{digits}f}]"


def _cost(runs: list[Job], key: str, scale: float, digits: int) -> str:
    values = _values(runs, f"cost/{key}")
    return f"{np.mean(values) * scale:.{digits}f}" if values else "-"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _header(titles: list[str]) -> list[str]:
    return [_row(titles), "|" + "---|" * len(titles)]


def comparison_table(jobs: list[Job], stats: Statistics | None = None) -> str:
    """Markdown: one row per configuration, the test metrics (%, clean and occluded, with 95 % intervals where the
    runs kept per-image results) and the net's cost; a first row with the resolution ceiling when there is one."""
    stats = stats or Statistics(jobs)
    lines = _header(["model", "seeds", *(c[0] for c in COLUMNS), *(c[0] for c in COST_COLUMNS)])
    ceiling = next(
        (run.metrics for runs in stats.groups.values() for run in runs if "ceiling/f1_fg" in run.metrics), None
    )
    if ceiling:
        cells = [
            _percent(ceiling.get(f"ceiling/{m}")) if s == "test" and m in ("miou", "f1_fg") else ""
            for _, s, m, *_ in COLUMNS
        ]
        lines.append(_row(["*ceiling: truth through the crop*", "", *cells, "", "", ""]))
    for label, runs in stats.groups.items():
        cells = [stats.cell(label, stage, metric, scale, digits) for _, stage, metric, scale, digits in COLUMNS]
        lines.append(_row([label, str(stats.seeds(label)), *cells, *(_cost(runs, *c[1:]) for c in COST_COLUMNS)]))
    return "\n".join(lines)


def per_class_table(jobs: list[Job], metric: str = "f1", stats: Statistics | None = None) -> str:
    """Markdown: per-class F1 (or IoU) in %, clean, one row per configuration, with 95 % intervals; the ceiling
    first when there is one."""
    stats = stats or Statistics(jobs)
    classes = scored_classes(jobs)
    lines = _header(["model", *classes])
    ceiling = next((r.metrics for runs in stats.groups.values() for r in runs if "ceiling/f1_fg" in r.metrics), None)
    if ceiling:
        lines.append(_row(["*ceiling*", *(_percent(ceiling.get(f"ceiling/{metric}/{c}")) for c in classes)]))
    for label in stats.groups:
        lines.append(_row([label, *(stats.cell(label, "test", f"{metric}/{c}", 100, 1) for c in classes)]))
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    """A ceiling value in %; "-" for a class absent from the test split (JSON null)."""
    return "-" if value is None else f"{100 * value:.1f}"


def _p(p: float) -> str:
    return "-" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def differences_section(jobs: list[Job], stats: Statistics | None = None, compared: list[str] | None = None) -> str:
    """Markdown: the mean F1 difference A - B (points), its 95 % interval and the paired permutation p-value, for
    every pair of the `compared` configurations (default: all), of every other configuration against the best of
    them and of one built from a compared one (a seed ensemble `unet x5 seeds`, an arm `unet (...)`) against that
    one too; then per class for the pairs of `compared`, Holm-corrected across the classes."""
    stats = stats or Statistics(jobs)
    if stats.boot is None:
        return ""
    labels = list(stats.groups)
    compared = [label for label in (compared if compared is not None else labels) if label in stats.groups]
    pairs = [(a, b) for i, a in enumerate(compared) for b in compared[i + 1 :]]
    if compared:
        best = max(compared, key=lambda label: (stats.estimate(label, "test", "f1_fg") or Estimate(-1, 0, 0, 0)).mean)
        for label in [label for label in labels if label not in compared]:
            own = [base for base in compared if label.startswith(f"{base} ") and base != best]
            pairs += [(label, best), *((label, base) for base in own)]
    if not pairs:
        return ""
    lines = _header(["A", "B", "mean F1 A - B", "95 % interval", "p"])
    for a, b in pairs:
        found = stats.differences(a, b, ["f1_fg"])
        if found:
            d = found[0]
            lines.append(_row([a, b, f"{100 * d.difference:+.1f}", _span(d), _p(d.p)]))
    classes = scored_classes(jobs)
    for i, a in enumerate(compared):
        for b in compared[i + 1 :]:
            found = stats.differences(a, b, [f"f1/{c}" for c in classes])
            if not found:
                continue
            adjusted = holm([d.p for d in found])
            lines += ["", f"**{a} - {b}**, F1 per class (points; p Holm-corrected across the {len(classes)} classes):"]
            lines += ["", *_header(["class", "difference", "95 % interval", "p", "p (Holm)"])]
            for c, d, p_holm in zip(classes, found, adjusted):
                lines.append(_row([c, f"{100 * d.difference:+.1f}", _span(d), _p(d.p), _p(p_holm)]))
    return "\n".join(lines)


def _span(d: Difference) -> str:
    return f"[{100 * d.low:+.1f}, {100 * d.high:+.1f}]"


def published_table(jobs: list[Job], stats: Statistics | None = None) -> str:
    """Markdown: the class set's published mean F1s (its config's `published`), then this sweep's."""
    stats = stats or Statistics(jobs)
    published = label_map(jobs).published
    lines = [f"Published: {published.get('benchmark', '')}", "", "| method | mean F1 |", "|---|---|"]
    lines += [f"| {name} (published) | {f1:.1f} |" for name, f1 in published.get("results", {}).items()]
    for label in stats.groups:
        lines.append(f"| {label} (this sweep) | {stats.cell(label, 'test', 'f1_fg', 100, 1)} |")
    return "\n".join(lines)


def condition_title(stage: str) -> str:
    """How the report names a test stage (facseg.data.conditions)."""
    if stage == "test":
        return "clean"
    if stage.startswith(("occluded_target/", "occluded_severity/")):
        return stage.split("/", 1)[1] + (" (coverage)" if stage.startswith("occluded_severity/") else "")
    titles = {
        "occluded": "random",
        "occluded_real": "real objects",
        "occluded_realigned": "realigned",
        "natural": "naturally occluded",
        "natural_clear": "not naturally occluded",
    }
    return titles.get(stage, stage)


def occluded_conditions(stats: Statistics) -> list[str]:
    """The occluded conditions the runs were scored under, the severity levels left to the severity curve."""
    stages = stats.stages()
    return [s for s in stages if f"{s}/hidden" in stages and not s.startswith("occluded_severity/")]


def severity_levels(stats: Statistics) -> list[tuple[float, str]]:
    stages = stats.stages()
    levels = [s for s in stages if s.startswith("occluded_severity/") and f"{s}/hidden" in stages]
    return sorted((float(s.split("/")[1]), s) for s in levels)


def alignment_note(jobs: list[Job]) -> str:
    """Which crop each occluded number used: the clean photo's, and how the realigned condition found its own."""
    first = next((job.metrics for job in jobs if job.metrics), {})
    clean = "5 landmarks" if (first.get("crop") or {}).get("align", True) else "the whole photo (letterbox)"
    counts = (first.get("aligned_by") or {}).get("occluded_realigned")
    note = f"Every condition but *realigned* crops the occluded photo as the clean one, from {clean}."
    if counts:
        found = ", ".join(f"{n} by {source}" for source, n in sorted(counts.items()))
        note += (
            " *Realigned* crops it from what a detector would see: landmarks perturbed where the occluder hides "
            f"them, or YuNet's 5 points on the occluded photo (photos: {found}; `whole image`: YuNet found no face, "
            "the photo was letterboxed)."
        )
    return note


def occlusion_section(
    jobs: list[Job],
    stats: Statistics | None = None,
    detailed: list[str] | None = None,
    arms: list[tuple[str, str]] = (),
) -> str:
    """Markdown: mean F1 under every condition; per condition, what the occluder costs on the pixels it leaves
    visible and what happens under it (for the `detailed` configurations, default all); the per-class
    hallucination rates at the primary level; and for each (occlusion-trained, clean-trained) pair of `arms`, their
    paired difference under every condition."""
    stats = stats or Statistics(jobs)
    conditions = occluded_conditions(stats) if stats.boot is not None else []
    if not conditions:
        return ""
    stages = stats.stages()
    natural = [s for s in ("natural", "natural_clear") if s in stages]
    columns = ["test", *conditions, *natural]
    detailed = [label for label in (detailed if detailed is not None else stats.groups) if label in stats.groups]
    lines = [
        "## Occlusion",
        "",
        "Mean F1 (%) on the same test images under each condition: *random*, occluders at random places hiding "
        f"the primary fraction of the face; {', '.join(condition_title(c) for c in conditions[1:])}. "
        + alignment_note(jobs),
        "",
        *_header(["model", *(condition_title(c) for c in columns)]),
    ]
    for label in stats.groups:
        lines.append(_row([label, *(stats.cell(label, c, "f1_fg", 100, 1) for c in columns)]))
    lines += [
        "",
        "Drop from clean (mean F1 points, clean minus occluded, on the same images and seeds): how much each "
        "condition costs each configuration, with its interval; overlapping intervals do not establish which "
        "configuration is more robust.",
        "",
        *_header(["model", *(condition_title(c) for c in conditions)]),
    ]
    for label in stats.groups:
        lines.append(_row([label, *(stats.cell(label, "test", "f1_fg", 100, 1, minus=c) for c in conditions)]))
    levels = severity_levels(stats)
    if levels:
        lines += [
            "",
            "Severity: mean F1 (%) as random occluders hide more of the face (the figure below draws it).",
            "",
            *_header(["model", "0 (clean)", *(f"{level:g}" for level, _ in levels)]),
        ]
        for label in stats.groups:
            stages = ["test", *(stage for _, stage in levels)]
            lines.append(_row([label, *(stats.cell(label, stage, "f1_fg", 100, 1) for stage in stages)]))
    lines += [
        "",
        "What each occluder costs. *Visible*: mean F1 on the pixels the occluder leaves visible, of the clean "
        "photo's prediction and of the occluded photo's, and the loss between them (clean minus occluded: worse "
        "parsing of what can still be seen). *Hidden*: of the occluder's pixels that hide face or hair, the share "
        "predicted as the very part they hide (*hallucinated*) and as background (*not face*, what LaPa's "
        "annotations say is there); the rest went to another part. In %, with 95 % intervals.",
        "",
        *_header(
            ["condition", "model", "visible: clean", "visible: occluded", "loss on visible", "hallucinated", "not face"]
        ),
    ]
    for condition in conditions:
        for label in detailed:
            lines.append(
                _row(
                    [
                        condition_title(condition),
                        label,
                        stats.cell(label, f"{condition}/visible_clean", "f1_fg", 100, 1),
                        stats.cell(label, f"{condition}/outside", "f1_fg", 100, 1),
                        stats.cell(label, f"{condition}/visible_clean", "f1_fg", 100, 1, minus=f"{condition}/outside"),
                        stats.cell(label, f"{condition}/hidden", "hallucinated", 100, 1),
                        stats.cell(label, f"{condition}/hidden", "not_face", 100, 1),
                    ]
                )
            )
    hidden_classes = scored_classes(jobs)
    lines += [
        "",
        "Hallucination per hidden class, *random* condition: of each class's pixels under the occluders, the share "
        "predicted as that class (%).",
        "",
        *_header(["model", *hidden_classes]),
    ]
    for label in detailed:
        cells = [stats.cell(label, "occluded/hidden", f"hallucinated/{c}", 100, 1) for c in hidden_classes]
        lines.append(_row([label, *cells]))
    if arms:
        lines += [
            "",
            "Trained with occluders minus trained clean (the same architecture and settings), mean F1 points on "
            "the same images: the difference, its 95 % interval and the paired permutation p-value. The real "
            "objects are a family that training never draws.",
            "",
        ]
        arm_columns = ["test", *conditions, *(stage for _, stage in levels), *natural]
        lines += _header(["model", *(condition_title(c) for c in arm_columns)])
        for occluded_arm, clean_arm in [pair for pair in arms if all(label in stats.groups for label in pair)]:
            cells = []
            for stage in arm_columns:
                found = stats.differences(occluded_arm, clean_arm, ["f1_fg"], stage)
                d = found[0] if found else None
                cells.append(f"{100 * d.difference:+.1f} {_span(d)}, p {_p(d.p)}" if d else "-")
            lines.append(_row([f"{occluded_arm} - {clean_arm}", *cells]))
    return "\n".join([*lines, ""])


def plot_severity(jobs: list[Job], stats: Statistics | None = None) -> Figure | None:
    """Mean F1 against the fraction of the face hidden (0: clean), one line per configuration, with the 95 %
    intervals as bands; None without severity levels."""
    stats = stats or Statistics(jobs)
    levels = severity_levels(stats) if stats.boot is not None else []
    if not levels:
        return None
    fig = Figure(figsize=(7, 4.5), layout="tight")
    ax = fig.subplots()
    points = [(0.0, "test"), *levels]
    for label in stats.groups:
        found = [stats.estimate(label, stage, "f1_fg") for _, stage in points]
        if any(f is None for f in found):
            continue
        x = [level for level, _ in points]
        ax.plot(x, [100 * f.mean for f in found], marker="o", label=label)
        ax.fill_between(x, [100 * f.low for f in found], [100 * f.high for f in found], alpha=0.2)
    ax.set_xlabel("fraction of the face hidden (random occluders)")
    ax.set_ylabel("mean F1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title("Severity: mean F1 against occluder coverage (95 % intervals)")
    return fig


def plot_per_class(jobs: list[Job], metric: str = "f1") -> Figure:
    """Grouped bars per class, one bar per configuration, clean above and occluded below (error bars: std)."""
    grouped = groups(jobs)
    fig = Figure(figsize=(12, 7), layout="tight")
    axes = fig.subplots(2, 1, sharex=True, sharey=True)
    width = 0.8 / max(1, len(grouped))
    classes = scored_classes(jobs)
    x = np.arange(len(classes))
    for ax, stage in zip(axes, ("test", "occluded")):
        for i, (label, runs) in enumerate(grouped.items()):
            stats = [mean_std(runs, f"{stage}/{metric}/{c}") or (np.nan, 0.0) for c in classes]
            means, stds = zip(*stats)
            ax.bar(x + (i - (len(grouped) - 1) / 2) * width, means, width, yerr=stds, label=label, capsize=2)
        ax.set_ylabel(f"{metric.upper()} ({'clean' if stage == 'test' else 'occluded'})")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="lower right", fontsize="small")
    axes[1].set_xticks(x, [c.replace("_", "\n") for c in classes])
    fig.suptitle(f"Per-class {metric.upper()} on the test split")
    return fig


def plot_confusion(jobs: list[Job], stage: str = "test") -> Figure:
    """Row-normalised confusion matrices (pooled over seeds): where each class's pixels went."""
    grouped = {k: v for k, v in groups(jobs).items() if any(stage in run.confusion for run in v)}
    names = label_map(jobs).names
    fig = Figure(figsize=(5.5 * max(1, len(grouped)), 5), layout="tight")
    axes = fig.subplots(1, max(1, len(grouped)), squeeze=False)
    for ax, (label, runs) in zip(axes[0], grouped.items()):
        counts = sum(run.confusion[stage] for run in runs if stage in run.confusion)
        rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"{label} ({'clean' if stage == 'test' else stage})")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("prediction")
        ax.set_ylabel("truth")
        for (r, c), v in np.ndenumerate(rates):
            if v >= 0.01:
                ax.text(
                    c, r, f"{100 * v:.0f}", ha="center", va="center", fontsize=6, color="white" if v > 0.5 else "black"
                )
    return fig


def colourise(label: np.ndarray, labels: LabelMap) -> np.ndarray:
    return labels.colour_table()[label]


def plot_qualitative(jobs: list[Job], count: int = 4) -> Figure:
    """Rows: the first test images, clean then occluded; columns: image, truth, each configuration's prediction."""
    grouped = {label: runs[0] for label, runs in groups(jobs).items() if runs[0].samples}
    if not grouped:
        raise ValueError("no job has samples.npz: the qualitative grid needs a finished, tested run")
    first = next(iter(grouped.values())).samples
    stages = [s for s in ("test", "occluded") if f"{s}/image" in first]
    rows = [(stage, i) for stage in stages for i in range(min(count, len(first[f"{stage}/image"])))]
    columns = ["image", "truth", *grouped]
    labels = label_map(jobs)
    fig = Figure(figsize=(1.8 * len(columns), 1.8 * len(rows)), layout="tight")
    axes = fig.subplots(len(rows), len(columns), squeeze=False)
    for r, (stage, i) in enumerate(rows):
        panels = [first[f"{stage}/image"][i], colourise(first[f"{stage}/label"][i], labels)]
        panels += [colourise(job.samples[f"{stage}/prediction"][i], labels) for job in grouped.values()]
        for c, panel in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(columns[c], fontsize=9)
            if c == 0:
                ax.set_ylabel("clean" if stage == "test" else "occluded", fontsize=9)
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes (a notebook shows them with IPython.display.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    return buffer.getvalue()


PROTOCOL = (
    "Each cell: the mean over seeds, and in brackets its 95 % interval from a bootstrap over seeds and test images "
    "(2,000 replicates; `seeds`: the seeds that contributed); mean ± std where a run kept no per-image results. "
    "*pixel acc* and *RMSE* over the whole photo, and *(crop)* inside the crop only (outside it the prediction is "
    "background with certainty). The *ceiling* row scores the ground truth itself taken through the crop and "
    "back, a hard label map at the crop's resolution: what the crop size costs a perfect crop prediction. It is a "
    "reference, not a bound: soft probabilities warped back can place a boundary between crop pixels, and an "
    "ensemble may pass it. Occluded: the same test images, each with a fixed occluder at a random place "
    "hiding a set fraction of the face, labelled background under it; *F1 drop* is clean minus occluded mean F1, "
    "*hallucinated* the share of the occluders' pixels that hide face or hair predicted as the part they hide "
    "(the Occlusion section has the other conditions). Parameters: those the test-time forward pass "
    "uses (PSPNet's auxiliary head, training only, is left out); GFLOPs count a multiply-add as 2: matched "
    "parameters are not matched compute. Paired differences: the difference of the seed means, its 95 % interval "
    "from the same bootstrap (one draw of images for both sides), and the p-value of a paired permutation test "
    "over images on each side's seed-averaged predictions; the interval also carries the seed-to-seed variation, "
    "so where the two disagree (a rare class), the interval is the cautious reading."
)


def write_report(
    directory: Path | str,
    out: Path | str | None = None,
    *,
    jobs: list[Job] | None = None,
    title: str | None = None,
    sections: list[str] = (),
    compared: list[str] | None = None,
    arms: list[tuple[str, str]] = (),
) -> Path:
    """report.md and figures/ in `out` (default: the sweep directory itself); returns the report's path.

    `jobs` (default: the sweep's), `title`, `sections` (markdown placed after the tables), `compared` (the
    configurations tested pairwise, per class too, and detailed under occlusion; default all) and `arms`
    ((occlusion-trained, clean-trained) pairs compared under every condition) let facseg.study reuse it.
    """
    jobs = jobs if jobs is not None else load_sweep(directory)
    out = Path(out) if out else Path(directory)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    finished = groups(jobs)
    lines = [f"# {title or f'Architecture comparison: `{Path(directory).name}`'}", ""]
    if finished:
        any_job = next(iter(finished.values()))[0].metrics
        cost = next((r.metrics for runs in finished.values() for r in runs if "cost/device" in r.metrics), {})
        stats = Statistics(jobs)
        lines += [
            f"Data: `{any_job['data']}`, scored at the {any_job['eval_resolution']} resolution in the "
            f"`{label_map(jobs).name}` classes. Metrics in % on the test split (mean F1: over "
            f"{', '.join(scored_classes(jobs))}). {PROTOCOL} Cost at {cost.get('cost/image_size')} px on "
            f"{cost.get('cost/device')}.",
            "",
            comparison_table(jobs, stats),
            "",
            "## Per-class F1 (%, clean)",
            "",
            per_class_table(jobs, "f1", stats),
            "",
        ]
        differences = differences_section(jobs, stats, compared)
        if differences:
            lines += ["## Paired differences (test images matched)", "", differences, ""]
        occlusion = occlusion_section(jobs, stats, compared, arms)
        if occlusion:
            lines += [occlusion]
        severity = plot_severity(jobs, stats)
        if severity is not None:
            write_bytes(figures / "severity_f1.png", png(severity))
            lines += ["![mean F1 against occluder coverage](figures/severity_f1.png)", ""]
        lines += [section for section in sections]
        if any_job["data"] != "synthetic" and label_map(jobs).published.get("results"):
            lines += ["## Beside the published results", "", published_table(jobs, stats), ""]
        for name, fig in [
            ("f1_per_class", plot_per_class(jobs, "f1")),
            ("iou_per_class", plot_per_class(jobs, "iou")),
            ("confusion_test", plot_confusion(jobs, "test")),
            ("confusion_occluded", plot_confusion(jobs, "occluded")),
        ]:
            write_bytes(figures / f"{name}.png", png(fig))
        lines += [
            "## Figures",
            "",
            "![per-class F1](figures/f1_per_class.png)",
            "",
            "![per-class IoU](figures/iou_per_class.png)",
            "",
            "![confusion matrices, clean](figures/confusion_test.png)",
            "",
            "![confusion matrices, occluded](figures/confusion_occluded.png)",
            "",
        ]
        if any(runs[0].samples for runs in finished.values()):
            write_bytes(figures / "qualitative.png", png(plot_qualitative(jobs)))
            lines += [
                "## The same test images under every model",
                "",
                "![qualitative grid](figures/qualitative.png)",
                "",
            ]
    else:
        lines += ["No job finished.", ""]
    failed = [job for job in jobs if job.status != "ok" or not job.metrics]
    if failed:
        lines += ["## Failed jobs", "", "| job | status | error |", "|---|---|---|"]
        first_lines = [j.error.splitlines()[0].replace("|", "\\|") if j.error else "" for j in failed]
        lines += [f"| {j.name} | {j.status} | {error} |" for j, error in zip(failed, first_lines)]
        lines.append("")
    report = out / "report.md"
    write_bytes(report, "\n".join(lines).encode())
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "directory",
        type=Path,
        nargs="?",
        help="a sweep directory or a run directory (default: the newest sweep under logs/multiruns)",
    )
    parser.add_argument("--out", type=Path, default=None, help="where report.md and figures/ go (default: DIRECTORY)")
    args = parser.parse_args(argv)
    directory = args.directory or newest_sweep()
    if directory is None:
        parser.error("no sweep under logs/multiruns: give a directory")
    print(write_report(directory, args.out))


if __name__ == "__main__":
    main()
