"""Turn a sweep (or a single run) directory into a comparison report: report.md plus figures.

The report's document and its command; a study hands over its own jobs and sections (facseg.study).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from facseg.report.estimates import Statistics
from facseg.report.figures import plot_confusion, plot_per_class, plot_qualitative, plot_severity, png
from facseg.report.kinds import error_tests, kinds_section
from facseg.report.occlusion import arm_tests, occlusion_section
from facseg.report.provenance import provenance_section
from facseg.report.runs import Job, groups, label_map, load_sweep, mean_f1_classes, newest_sweep
from facseg.report.tables import (
    comparison_table,
    comparison_tests,
    differences_section,
    per_class_table,
    published_table,
)
from facseg.runtime.atomic import write_bytes

PROTOCOL = (
    "Each cell: the mean over seeds, and in brackets its 95 % interval, mean ± t × SE, whose SE adds the "
    "seed-to-seed variance of the runs (t with seeds - 1 degrees of freedom: the trained run is the unit of "
    "replication) to the test images' variance from a bootstrap over images (2,000 replicates, one draw shared by "
    "the whole report), made on the metric's variance-stabilising scale (arcsin √x for fractions, √x for "
    "non-negative quantities) and mapped back, so that it stays inside the metric's range; `seeds`: the runs that "
    "contributed; a configuration of one run (a seed ensemble) has an interval over test images only, given that "
    "run. Mean ± std where a run kept no per-image results. Means "
    "average one class set, the classes the test split's truth holds, the same for every model and condition. "
    "*pixel acc* and *RMSE* over the whole photo, and *(crop)* inside the crop only (outside it the prediction is "
    "background with certainty). RMSE: the root of the per-pixel Brier score summed over classes (unused classes "
    "add nothing). The *ceiling* row scores the ground truth itself taken through the crop and "
    "back, a hard label map at the crop's resolution: what the crop size costs a perfect crop prediction. It is a "
    "reference, not a bound: soft probabilities warped back can place a boundary between crop pixels, and an "
    "ensemble may pass it. Occluded: the same test images, each with a fixed occluder at a random place "
    "hiding a set fraction of the face, labelled background under it (a real object of a class the class set has, "
    "as that class); *F1 drop* is clean minus occluded mean F1, "
    "*hallucinated* the share of the occluders' pixels that hide face or hair predicted as the part they hide "
    "(the Occlusion section has the other conditions). Parameters: those the test-time forward pass "
    "uses (PSPNet's auxiliary head, training only, is left out); GFLOPs count a multiply-add as 2: matched "
    "parameters are not matched compute. Paired differences: the difference of the seed means, its 95 % interval "
    "(both sides' seed variances and the paired image variance, Welch-Satterthwaite degrees of freedom) and the "
    "p-value of the same t statistic, so p < 0.05 before adjustment exactly when the interval leaves out 0. "
    "Every p-value printed is Holm-adjusted over the report's family: all the tests the report prints (pairs, "
    "classes, conditions and arms together). Intervals without a p-value are descriptive."
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
        tests = comparison_tests(stats, compared, mean_f1_classes(jobs)) + arm_tests(stats, arms)
        tests += error_tests(stats, compared)
        family = stats.family(tests) if stats.boot is not None else 0
        lines += [
            f"Data: `{any_job['data']}`, scored at the {any_job['eval_resolution']} resolution in the "
            f"`{label_map(jobs).name}` classes. Metrics in % on the test split (mean F1: over "
            f"{', '.join(mean_f1_classes(jobs))}). {PROTOCOL} This report's family: {family} tests. "
            f"Cost at {cost.get('cost/image_size')} px on "
            f"{cost.get('cost/device')}; ms/image: the fastest of the runs' timings (each times its net once after "
            "training, and a busy machine slows a timing, never speeds it).",
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
        kinds, kinds_figures = kinds_section(jobs, stats, compared)
        if kinds:
            lines += [kinds]
            for name, fig in kinds_figures.items():
                write_bytes(figures / name, png(fig))
        occlusion = occlusion_section(jobs, stats, compared, arms)
        if occlusion:
            lines += [occlusion]
        severity = plot_severity(jobs, stats)
        if severity is not None:
            write_bytes(figures / "severity_f1.png", png(severity))
            lines += ["![mean F1 against occluder coverage](figures/severity_f1.png)", ""]
        lines += [section for section in sections]
        produced = provenance_section(jobs)
        if produced:
            lines += [produced]
        if any_job["data"] != "synthetic" and label_map(jobs).published.get("results"):
            lines += ["## Beside the published results", "", published_table(jobs, stats), ""]
        for name, fig in [
            ("f1_per_class", plot_per_class(jobs, "f1", stats)),
            ("iou_per_class", plot_per_class(jobs, "iou", stats)),
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
    try:
        print(write_report(directory, args.out))
    except FileNotFoundError as e:  # no such folder, or no jobs in it: say so in a line, no traceback
        parser.error(str(e))
