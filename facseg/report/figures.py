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

# One hue per architecture (Okabe and Ito's colour-blind-safe set), its variants by line style, marker and hatch.
HUES = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
LINES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
PANEL = 6  # more series than this: small multiples, one panel per kind of configuration


def architecture(label: str) -> str:
    return label.split(" ", 1)[0]


def kind(label: str) -> str:
    """`single nets`, `ensembles` (of seeds, ` xN seeds`, or of architectures, `a+b`) or `variants` (an arm's, a
    sweep's override)."""
    if "+" in architecture(label) or " seeds" in label:
        return "ensembles"
    return "single nets" if " " not in label else "variants"


def styles(labels: list[str]) -> dict[str, dict]:
    """Per label: its architecture's colour, and a line style, marker and hatch of its own within it."""
    hues = {a: HUES[i % len(HUES)] for i, a in enumerate(dict.fromkeys(map(architecture, labels)))}
    seen: dict[str, int] = {}
    out = {}
    for label in labels:
        n = seen[architecture(label)] = seen.get(architecture(label), -1) + 1
        out[label] = {
            "color": hues[architecture(label)],
            "linestyle": LINES[n % len(LINES)],
            "marker": MARKERS[n % len(MARKERS)],
            "hatch": HATCHES[n % len(HATCHES)],
        }
    return out


def panels(labels: list[str]) -> list[tuple[str, list[str]]]:
    """One panel of every label, or, past PANEL of them, one per kind (single nets / variants / ensembles)."""
    if len(labels) <= PANEL:
        return [("", labels)]
    kinds = {k: [label for label in labels if kind(label) == k] for k in ("single nets", "variants", "ensembles")}
    return [(k, members) for k, members in kinds.items() if members]


def plot_severity(jobs: list[Job], stats: Statistics | None = None) -> Figure | None:
    """Mean F1 against the fraction of the face hidden (0: clean), one line per configuration, with the 95 %
    intervals as bands; small multiples past six configurations; None without severity levels."""
    stats = stats or Statistics(jobs)
    levels = severity_levels(stats) if stats.boot is not None else []
    if not levels:
        return None
    points = [(0.0, "test"), *levels]
    found = {label: [stats.estimate(label, stage, "f1_fg") for _, stage in points] for label in stats.groups}
    found = {label: values for label, values in found.items() if all(values)}
    style = styles(list(found))
    grid = panels(list(found))
    fig = Figure(figsize=(11, 3.6 * len(grid)), layout="constrained")
    axes = fig.subplots(len(grid), 1, squeeze=False, sharex=True, sharey=True)[:, 0]
    x = [level for level, _ in points]
    for ax, (title, labels) in zip(axes, grid):
        for label in labels:
            values, look = found[label], style[label]
            ax.plot(
                x,
                [100 * f.mean for f in values],
                label=label,
                color=look["color"],
                linestyle=look["linestyle"],
                marker=look["marker"],
            )
            low, high = [100 * f.low for f in values], [100 * f.high for f in values]
            ax.fill_between(x, low, high, color=look["color"], alpha=0.12, linewidth=0)
        ax.set_ylabel("mean F1 (%)")
        ax.grid(alpha=0.3)
        ax.set_title(title, loc="left", fontsize="medium")
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes[-1].set_xlabel("fraction of the face hidden (random occluders)")
    fig.suptitle("Severity: mean F1 against occluder coverage (bands: 95 % intervals)")
    return fig


def plot_per_class(jobs: list[Job], metric: str = "f1", stats: Statistics | None = None) -> Figure:
    """Grouped bars per class, one bar per configuration (colour: architecture, hatch: variant), clean beside
    occluded, with 95 % intervals (std over seeds where no run kept per-image results); one row of panels per
    kind of configuration past six of them."""
    stats = stats or Statistics(jobs)
    style = styles(list(stats.groups))
    grid = panels(list(stats.groups))
    classes = mean_f1_classes(jobs)
    x = np.arange(len(classes))
    fig = Figure(figsize=(18, 3.4 * len(grid)), layout="constrained")
    axes = fig.subplots(len(grid), 2, squeeze=False, sharey=True)
    for row, (title, labels) in zip(axes, grid):
        width = 0.8 / len(labels)
        for ax, stage in zip(row, ("test", "occluded")):
            for i, label in enumerate(labels):
                means, errors = bar_values(stats, label, stage, [f"{metric}/{c}" for c in classes])
                look = style[label]
                ax.bar(
                    x + (i - (len(labels) - 1) / 2) * width,
                    means,
                    width,
                    yerr=errors,
                    label=label,
                    capsize=1.5,
                    color=look["color"],
                    hatch=look["hatch"],
                    edgecolor="white",
                    linewidth=0.3,
                )
            ax.set_ylim(0, 1)
            ax.grid(axis="y", alpha=0.3)
            ax.set_xticks(x, [c.replace("_", "\n") for c in classes], fontsize="small")
            ax.set_title(
                f"{title + ', ' if title else ''}{'clean' if stage == 'test' else 'occluded'}",
                loc="left",
                fontsize="medium",
            )
        row[0].set_ylabel(metric.upper())
        row[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.suptitle(f"Per-class {metric.upper()} on the test split (error bars: 95 % intervals)")
    return fig


def bar_values(stats: Statistics, label: str, stage: str, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Means and 2 x K error bar lengths (95 % intervals; mean ± std from metrics.json without per-image results)."""
    found = [stats.estimate(label, stage, key) for key in keys]
    if all(found):
        means = np.array([f.mean for f in found])
        return means, np.abs(np.array([[f.low for f in found], [f.high for f in found]]) - means)
    values = [mean_std(stats.groups[label], f"{stage}/{key}") or (np.nan, 0.0) for key in keys]
    means, stds = (np.array(v) for v in zip(*values))
    return means, np.stack([stds, stds])


def plot_confusion(jobs: list[Job], stage: str = "test") -> Figure:
    """Row-normalised confusion matrices (pooled over seeds): where each class's pixels went."""
    grouped = {k: v for k, v in groups(jobs).items() if any(stage in run.confusion for run in v)}
    names = label_map(jobs).names
    columns = min(4, max(1, len(grouped)))
    rows = -(-max(1, len(grouped)) // columns)
    fig = Figure(figsize=(5.5 * columns, 5 * rows), layout="tight")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[len(grouped) :]:
        ax.axis("off")
    for ax, (label, runs) in zip(axes, grouped.items()):
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
