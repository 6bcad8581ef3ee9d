"""The report's markdown tables: the comparison with intervals and costs, per-class F1 and IoU, the paired
differences (their p-values Holm-adjusted over the report's family), and the published results beside this
sweep's."""

from __future__ import annotations

import numpy as np

from facseg.report.bootstrap import Estimate
from facseg.report.estimates import Statistics, Test
from facseg.report.runs import Job, finite_values, label_map, mean_f1_classes

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


# (column title, cost.json key, scale, digits): the net's cost does not depend on the seed.
COST_COLUMNS = [("params (M)", "params", 1e-6, 2), ("GFLOPs", "gflops", 1, 2), ("ms/image", "ms_per_image", 1, 1)]


def cost_cell(runs: list[Job], key: str, scale: float, digits: int) -> str:
    """The runs' least figure: each run times its net once, after training, and a busy machine slows a timing,
    never speeds it (parameters and GFLOPs are the same for every run)."""
    values = finite_values(runs, f"cost/{key}")
    return f"{np.min(values) * scale:.{digits}f}" if values else "-"


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def md_header(titles: list[str]) -> list[str]:
    return [md_row(titles), "|" + "---|" * len(titles)]


def comparison_table(jobs: list[Job], stats: Statistics | None = None) -> str:
    """Markdown: one row per configuration, the test metrics (%, clean and occluded, with 95 % intervals where the
    runs kept per-image results) and the net's cost; a first row with the resolution ceiling when there is one."""
    stats = stats or Statistics(jobs)
    lines = md_header(["model", "seeds", *(c[0] for c in COLUMNS), *(c[0] for c in COST_COLUMNS)])
    ceiling = next(
        (run.metrics for runs in stats.groups.values() for run in runs if "ceiling/f1_fg" in run.metrics), None
    )
    if ceiling:
        cells = [
            percent(ceiling.get(f"ceiling/{m}")) if s == "test" and m in ("miou", "f1_fg") else ""
            for _, s, m, *_ in COLUMNS
        ]
        lines.append(md_row(["*ceiling: truth through the crop*", "", *cells, "", "", ""]))
    for label, runs in stats.groups.items():
        cells = [stats.cell(label, stage, metric, scale, digits) for _, stage, metric, scale, digits in COLUMNS]
        lines.append(md_row([label, str(stats.seeds(label)), *cells, *(cost_cell(runs, *c[1:]) for c in COST_COLUMNS)]))
    return "\n".join(lines)


def per_class_table(jobs: list[Job], metric: str = "f1", stats: Statistics | None = None) -> str:
    """Markdown: per-class F1 (or IoU) in %, clean, one row per configuration, with 95 % intervals; the ceiling
    first when there is one."""
    stats = stats or Statistics(jobs)
    classes = mean_f1_classes(jobs)
    lines = md_header(["model", *classes])
    ceiling = next((r.metrics for runs in stats.groups.values() for r in runs if "ceiling/f1_fg" in r.metrics), None)
    if ceiling:
        lines.append(md_row(["*ceiling*", *(percent(ceiling.get(f"ceiling/{metric}/{c}")) for c in classes)]))
    for label in stats.groups:
        lines.append(md_row([label, *(stats.cell(label, "test", f"{metric}/{c}", 100, 1) for c in classes)]))
    return "\n".join(lines)


def percent(value: float | None) -> str:
    """A ceiling value in %; "-" for a class absent from the test split (JSON null)."""
    return "-" if value is None else f"{100 * value:.1f}"


def format_p(p: float) -> str:
    return "-" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def compared_labels(stats: Statistics, compared: list[str] | None) -> list[str]:
    """The compared configurations the runs hold (all of them when `compared` is None), in `compared`'s order."""
    return [label for label in (compared if compared is not None else list(stats.groups)) if label in stats.groups]


def comparison_tests(stats: Statistics, compared: list[str] | None = None, classes: list[str] = ()) -> list[Test]:
    """The paired differences the report tests: mean F1 for every pair of the `compared` configurations (default:
    all), of every other configuration against the comparator (the best of them on validation) and of one built
    from a compared one (a seed ensemble `unet x5 seeds`, an arm `unet (...)`) against that one too; then F1 per
    class (`classes`) for the pairs of `compared`."""
    labels = list(stats.groups)
    compared = compared_labels(stats, compared)
    pairs = [(a, b) for i, a in enumerate(compared) for b in compared[i + 1 :]]
    per_class = [(a, b, "test", f"f1/{c}") for a, b in pairs for c in classes]
    if compared:
        best = stats.comparator(compared)
        for label in [label for label in labels if label not in compared]:
            own = [base for base in compared if label.startswith(f"{base} ") and base != best]
            pairs += [(label, best), *((label, base) for base in own)]
    return [(a, b, "test", "f1_fg") for a, b in pairs] + per_class


def given(d: Estimate) -> str:
    """What a difference's interval and p-value treat as random."""
    return "images only, given these runs" if d.conditional else "runs and images"


def differences_section(jobs: list[Job], stats: Statistics, compared: list[str] | None = None) -> str:
    """Markdown: the mean F1 difference A - B (points), its 95 % interval and p-value (Holm-adjusted over the
    report's family: `Statistics.family` must have run) for the tests of `comparison_tests`, then per class."""
    if stats.boot is None:
        return ""
    classes = mean_f1_classes(jobs)
    tests = comparison_tests(stats, compared, classes)
    overall = [test for test in tests if test[3] == "f1_fg"]
    if not overall:
        return ""
    lines = md_header(["A", "B", "mean F1 A - B", "95 % interval", "p (Holm)", "random"])
    for test in overall:
        d = stats.difference(test)
        if d:
            lines.append(md_row([*test[:2], f"{100 * d.mean:+.1f}", format_span(d), format_p(d.p), given(d)]))
    pairs = list(dict.fromkeys(test[:2] for test in tests if test[3] != "f1_fg"))
    for a, b in pairs:
        found = [stats.difference((a, b, "test", f"f1/{c}")) for c in classes]
        if not all(found):
            continue
        lines += ["", f"**{a} - {b}**, F1 per class (points):", ""]
        lines += md_header(["class", "difference", "95 % interval", "p (Holm)"])
        for c, d in zip(classes, found):
            lines.append(md_row([c, f"{100 * d.mean:+.1f}", format_span(d), format_p(d.p)]))
    return "\n".join(lines)


def format_span(d: Estimate) -> str:
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
