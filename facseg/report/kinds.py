"""The report's section on the kinds of error: what each configuration gets right and wrong beyond region overlap
(boundaries, structure, the jawline; facseg.metrics.errors), clean and under the primary occlusion, the paired
tests between the compared configurations in the report's one Holm family, and a reading of the study's claims.

The study facseg grew from concluded that U-Net handles fine-grained details, that PSPNet preserves global structure,
and that ensembles or hybrids may be more robust. Each claim is read from one paired test, stated in advance
(`CLAIMS`): supported when its Holm-adjusted p-value is below 0.05 in the claimed direction, contradicted when it
is below 0.05 the other way, and otherwise the numbers cannot tell.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
from matplotlib.figure import Figure

from facseg.metrics.structure import components
from facseg.report.bootstrap import Estimate
from facseg.report.estimates import Statistics, Test, format_estimate
from facseg.report.runs import Job, label_map, mean_f1_classes
from facseg.report.tables import compared_labels, format_p, md_header, md_row

# (column title, metric, scale, digits, higher is better)
KINDS = [
    ("mean F1", "f1_fg", 100, 1, True),
    ("boundary F 2 px", "bf1/2px", 100, 1, True),
    ("Boundary IoU 2 px", "biou/2px", 100, 1, True),
    ("HD95 (px)", "hd95", 1, 1, False),
    ("fragments / face", "fragments", 1, 2, False),
    ("plausible", "anatomy_ok", 100, 1, True),
    ("jaw NME (% IOD)", "jaw_nme", 100, 2, False),
    ("jaw boundary F 2 px", "jaw_bf1/2px", 100, 1, True),
]
STAGES = (("clean", "test"), ("occluded", "occluded"))
PARENTS = ("unet", "pspnet")
# (claim, A, B, stage, metric): A minus B, and the sign the claim expects (+1: A higher). Hybrids: each against
# both parents.
CLAIMS = [
    ("U-Net handles fine-grained details better than PSPNet", "unet", "pspnet", "test", "bf1/2px", +1),
    ("PSPNet preserves global structure better than U-Net", "pspnet", "unet", "test", "anatomy_ok", +1),
    *(
        (f"{hybrid} is more robust to occlusion than {parent}", hybrid, parent, "occluded", "f1_fg", +1)
        for hybrid in ("hybrid", "deeplabv3plus")
        for parent in PARENTS
    ),
]


def shown(stats: Statistics) -> list[tuple]:
    """The KINDS the runs measured (the jaw by landmarks or by outline, as the data has them)."""
    labels = list(stats.groups)

    def measured(metric: str) -> bool:
        return any((e := stats.estimate(label, "test", metric)) and np.isfinite(e.mean) for label in labels)

    return [kind for kind in KINDS if measured(kind[1])]


def stages(stats: Statistics) -> list[tuple[str, str]]:
    return [(title, stage) for title, stage in STAGES if stage in stats.stages()]


def error_tests(stats: Statistics, compared: list[str] | None = None) -> list[Test]:
    """The paired tests of this section: every kind of error for each pair of the compared configurations, clean
    and occluded, and the claims' (a hybrid against each parent)."""
    if stats.boot is None:
        return []
    labels = compared_labels(stats, compared)
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    measured = [kind[1] for kind in shown(stats)]
    kinds = [metric for metric in measured if metric != "f1_fg"]
    tests = [(a, b, stage, metric) for _, stage in stages(stats) for a, b in pairs for metric in kinds]
    claims = [(a, b, stage, metric) for _, a, b, stage, metric, _ in CLAIMS if metric in measured]
    claims = [test for test in claims if test[0] in stats.groups and test[1] in stats.groups]
    return tests + [test for test in claims if reverse(test) not in tests]  # a test once, in either direction


def reverse(test: Test) -> Test:
    a, b, stage, metric = test
    return b, a, stage, metric


def claimed(stats: Statistics, test: Test) -> Estimate | None:
    """A claim's test as it states it (A - B), from the family's test in either direction."""
    if test[0] not in stats.groups or test[1] not in stats.groups:
        return None
    d = stats.difference(test)
    if d is None or not np.isfinite(d.p):
        flipped = stats.difference(reverse(test))
        if flipped is not None and np.isfinite(flipped.p):
            return replace(flipped, mean=-flipped.mean, low=-flipped.high, high=-flipped.low)
    return d


def kinds_section(jobs: list[Job], stats: Statistics, compared: list[str] | None = None) -> tuple[str, dict]:
    """Markdown, and the figures it shows ({file name: Figure}); empty where no run measured the kinds of error."""
    kinds = shown(stats) if stats.boot is not None else []
    if len(kinds) <= 1:
        return "", {}
    lines = [
        "## Kinds of error: boundaries, structure, the jawline",
        "",
        "Region F1 counts pixels; these count what it does not see (docs/protocol.md, Kinds of error): boundary F "
        "at 2 px and Boundary IoU of 2 px bands (%), the 95th-percentile Hausdorff distance between the boundaries "
        "(pixels; a missed or invented class scores the photo's diagonal), extra fragments per face (components "
        "touching no truth pixel of their class), the share of plausible parses (no more regions of each eye, brow, "
        "nose and lip than the truth shows; no eye where the other one is) and the jawline's error. Means over the "
        "mean-F1 classes, with 95 % intervals as above.",
        "",
    ]
    for title, stage in stages(stats):
        lines += [f"**{title}**", "", *table(stats, stage, kinds), ""]
    lines += ["Boundary F (2 px) beside region F1 per class, clean (%):", "", *per_class(jobs, stats), ""]
    differences = difference_rows(stats, error_tests(stats, compared), kinds)
    if differences:
        lines += ["Paired differences A - B (Holm-adjusted over the report's family):", "", *differences, ""]
    claims = claim_rows(stats)
    if claims:
        lines += ["**The study's claims**, each read from one test stated in advance:", "", *claims, ""]
    figures = {"f1_vs_boundary_f.png": plot_f1_vs_boundary(jobs, stats, compared)}
    lines += ["![region F1 against boundary F per class](figures/f1_vs_boundary_f.png)", ""]
    swaps = swap_rows(jobs, stats)
    if swaps:
        lines += [
            "Left/right swaps: the share of each pair's true pixels predicted as its mirror class (%, clean, "
            "pooled over the runs' confusion matrices):",
            "",
            *swaps,
            "",
        ]
        figures["left_right_swaps.png"] = plot_swaps(jobs, stats)
        lines += ["![left/right swaps per pair](figures/left_right_swaps.png)", ""]
    error_map = plot_error_map(jobs, stats, compared)
    if error_map is not None:
        figures["error_map.png"] = error_map
        lines += ["![one face's errors: boundaries and fragments](figures/error_map.png)", ""]
    return "\n".join(lines), figures


def table(stats: Statistics, stage: str, kinds: list[tuple]) -> list[str]:
    rows = md_header(["model", *(k[0] for k in kinds)])
    for label in stats.groups:
        cells = [format_estimate(e, k[2], k[3]) if (e := stats.estimate(label, stage, k[1])) else "-" for k in kinds]
        rows.append(md_row([label, *cells]))
    return rows


def per_class(jobs: list[Job], stats: Statistics) -> list[str]:
    labels = list(stats.groups)
    rows = md_header(["class", *(f"{label} {kind}" for label in labels for kind in ("F1", "bF"))])
    for c in mean_f1_classes(jobs):
        cells = []
        for label in labels:
            for metric in (f"f1/{c}", f"bf1/2px/{c}"):
                found = stats.estimate(label, "test", metric)
                cells.append(f"{100 * found.mean:.1f}" if found and np.isfinite(found.mean) else "-")
        rows.append(md_row([c, *cells]))
    return rows


def difference_cells(d: Estimate, scale: float, digits: int) -> list[str]:
    span = f"[{d.low * scale:+.{digits}f}, {d.high * scale:+.{digits}f}]"
    return [f"{d.mean * scale:+.{digits}f}", span, format_p(d.p)]


def difference_rows(stats: Statistics, tests: list[Test], kinds: list[tuple]) -> list[str]:
    scales = {k[1]: k[2:4] for k in KINDS}
    rows = md_header(["A", "B", "stage", "metric", "A - B", "95 % interval", "p (Holm)"])
    for test in dict.fromkeys(tests):
        d = stats.difference(test)
        if d is not None and np.isfinite(d.mean):
            rows.append(md_row([*test[:4], *difference_cells(d, *scales[test[3]])]))
    return rows if len(rows) > 2 else []


def reading(d: Estimate, sign: int) -> str:
    if not np.isfinite(d.p) or d.p >= 0.05:
        return "cannot tell"
    return "supports it" if np.sign(d.mean) == sign else "contradicts it"


def claim_rows(stats: Statistics) -> list[str]:
    scales = {k[1]: k[2:4] for k in KINDS}
    rows = md_header(["claim", "test", "A - B", "95 % interval", "p (Holm)", "the numbers"])
    for claim, a, b, stage, metric, sign in CLAIMS:
        d = claimed(stats, (a, b, stage, metric))
        if d is not None and np.isfinite(d.mean):
            test = f"{a} - {b}, {metric}, {'clean' if stage == 'test' else stage}"
            rows.append(md_row([claim, test, *difference_cells(d, *scales[metric]), reading(d, sign)]))
    return rows if len(rows) > 2 else []


def swap_shares(jobs: list[Job], stats: Statistics) -> dict[str, list[float]]:
    """Per configuration, per flip pair of the class set: (pixels of a predicted as b + of b as a) / (a + b), from
    the pooled clean confusion matrices of its runs."""
    labels = label_map(jobs)
    pairs = [(labels.names.index(a), labels.names.index(b)) for a, b in labels.flip_pairs]
    out = {}
    for label, runs in stats.groups.items():
        matrices = [run.confusion["test"] for run in runs if "test" in run.confusion]
        if matrices and pairs:
            m = np.sum(matrices, 0)
            out[label] = [(m[a, b] + m[b, a]) / max(m[a].sum() + m[b].sum(), 1) for a, b in pairs]
    return out


def swap_rows(jobs: list[Job], stats: Statistics) -> list[str]:
    shares = swap_shares(jobs, stats)
    if not shares:
        return []
    pairs = [f"{a} / {b}" for a, b in label_map(jobs).flip_pairs]
    return md_header(["model", *pairs]) + [
        md_row([label, *(f"{100 * s:.2f}" for s in found)]) for label, found in shares.items()
    ]


def plot_swaps(jobs: list[Job], stats: Statistics) -> Figure:
    shares = swap_shares(jobs, stats)
    pairs = [f"{a}/{b}" for a, b in label_map(jobs).flip_pairs]
    fig = Figure(figsize=(1.6 * len(pairs) * max(1, len(shares)) / 2 + 2, 3.5), layout="tight")
    ax = fig.subplots()
    width = 0.8 / max(1, len(shares))
    for n, (label, found) in enumerate(shares.items()):
        ax.bar(np.arange(len(pairs)) + n * width, [100 * s for s in found], width, label=label)
    ax.set_xticks(np.arange(len(pairs)) + width * (len(shares) - 1) / 2, pairs, fontsize=8)
    ax.set_ylabel("swapped (% of the pair's pixels)")
    ax.set_title("left/right swaps, clean")
    ax.legend(fontsize=7)
    return fig


def plot_f1_vs_boundary(jobs: list[Job], stats: Statistics, compared: list[str] | None = None) -> Figure:
    """Per class and compared configuration (every one without `compared`), region F1 (x) against boundary F at
    2 px (y): a class below the diagonal has its pixels right and its edges wrong. Ensembles are left to the
    tables: with them a study's figure has too many series to tell apart."""
    fig = Figure(figsize=(6.5, 6), layout="tight")
    ax = fig.subplots()
    classes = mean_f1_classes(jobs)
    labels = compared_labels(stats, compared)
    for n, label in enumerate(labels):
        points = []
        for c in classes:
            f1, bf = (stats.estimate(label, "test", m) for m in (f"f1/{c}", f"bf1/2px/{c}"))
            if f1 and bf and np.isfinite(f1.mean) and np.isfinite(bf.mean):
                points.append((100 * f1.mean, 100 * bf.mean, c))
        if points:
            x, y, names = zip(*points)
            ax.scatter(x, y, label=label, marker="os^Dv"[n % 5])
            for xi, yi, name in points:
                ax.annotate(name, (xi, yi), fontsize=6, alpha=0.7)
    ax.plot([0, 100], [0, 100], color="grey", linewidth=0.8)
    ax.set_xlabel("region F1 (%)")
    ax.set_ylabel("boundary F at 2 px (%)")
    ax.set_title("per class, clean")
    ax.legend(fontsize=8)
    return fig


def error_overlay(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB: right pixels grey, wrong pixels within 2 px of a truth boundary orange, pixels of extra fragments
    magenta, other wrong pixels blue."""
    boundary = np.zeros(truth.shape, np.uint8)
    boundary[:, 1:] |= (truth[:, 1:] != truth[:, :-1]).astype(np.uint8)
    boundary[1:, :] |= (truth[1:, :] != truth[:-1, :]).astype(np.uint8)
    near = cv2.dilate(boundary, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))) > 0
    fragment = np.zeros(truth.shape, bool)
    for k in np.unique(pred):
        count, labels = components(pred == k)
        touching = np.unique(labels[truth == k])
        fragment |= (labels > 0) & ~np.isin(labels, touching)
    out = np.full((*truth.shape, 3), 220, np.uint8)
    wrong = pred != truth
    out[wrong] = (0, 114, 178)
    out[wrong & near] = (230, 159, 0)
    out[fragment] = (204, 121, 167)
    return out


def plot_error_map(jobs: list[Job], stats: Statistics, compared: list[str] | None = None) -> Figure | None:
    """The first clean test sample (a crop) under each compared configuration (every one without `compared`): the
    truth, then its errors by kind. Ensembles are left out, as in plot_f1_vs_boundary: a study's 17 panels in a row
    are too small to read."""
    shown = compared_labels(stats, compared)
    kept = {}
    for job in jobs:
        if job.samples and "test/prediction" in job.samples and job.label in shown and job.label not in kept:
            kept[job.label] = job.samples
    if not kept:
        return None
    first = next(iter(kept.values()))
    labels = label_map(jobs)
    fig = Figure(figsize=(2.4 * (len(kept) + 1), 2.8), layout="tight")
    axes = fig.subplots(1, len(kept) + 1, squeeze=False)[0]
    truth = first["test/label"][0]
    axes[0].imshow(labels.colour_table()[truth])
    axes[0].set_title("truth", fontsize=9)
    for ax, (label, samples) in zip(axes[1:], kept.items()):
        ax.imshow(error_overlay(truth, samples["test/prediction"][0]))
        ax.set_title(label, fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("errors: orange within 2 px of a boundary, magenta extra fragments, blue elsewhere", fontsize=8)
    return fig
