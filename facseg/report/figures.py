"""The report's figures (matplotlib, no pyplot: no global figures, no display backend, on clusters too): the
severity curve, per-class bars, confusion matrices and a qualitative grid of the same test images."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from facseg.data.labels import LabelMap
from facseg.report.estimates import Statistics
from facseg.report.occlusion import severity_levels
from facseg.report.runs import Job, groups, label_map, mean_f1_classes, mean_std


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
    classes = mean_f1_classes(jobs)
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
