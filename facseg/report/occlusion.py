"""The report's occlusion section: mean F1 under every test condition, the drop from clean, the severity curve's
table, what each occluder costs on the pixels it leaves visible and under it, and the occlusion-trained arms."""

from __future__ import annotations

from facseg.report.estimates import Statistics, Test, format_estimate
from facseg.report.runs import Job, mean_f1_classes
from facseg.report.tables import format_p, format_span, md_header, md_row

KIND_SHARES = ("hallucinated", "not_face")


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


def kinds_table(stats: Statistics, conditions: list[str], detailed: list[str]) -> list[str]:
    """Markdown lines: under each kind of occluder, what its hidden pixels were predicted as."""
    rows = []
    for condition in conditions:
        kinds = stats.kinds(condition)
        if kinds is None:
            continue
        for kind in sorted(set(kinds.tolist())):
            keep = kinds == kind
            own = f"predicted_as/{kind}" if kind in stats.classes else None
            for label in detailed:
                cells = [stats.estimate(label, f"{condition}/hidden", key, keep=keep) for key in KIND_SHARES]
                cells.append(stats.estimate(label, f"{condition}/hidden", own, keep=keep) if own else None)
                row = [condition_title(condition), kind, str(int(keep.sum())), label]
                rows.append(md_row([*row, *(format_estimate(c, 100, 1) if c else "-" for c in cells)]))
    if not rows:
        return []
    return [
        "",
        "Under each kind of occluder: of the face or hair pixels it hides, the share predicted as the very part "
        "hidden (*hallucinated*), as background (*not face*) and as the object's own class where the class set "
        "has one (eye_g, hat). Drawn hands are skin-coloured; ellipses, polygons and bars take random colours and "
        "textures. At random places (*random*), a kind that draws more *hallucinated* than the others shows a net "
        "reading the object's appearance as face, not completing what it cannot see. In %, with 95 % intervals.",
        "",
        *md_header(["condition", "kind", "images", "model", "hallucinated", "not face", "as its own class"]),
        *rows,
    ]


def arm_tests(stats: Statistics, arms: list[tuple[str, str]]) -> list[Test]:
    """Each (occlusion-trained, clean-trained) pair of `arms` under every condition: the tests of the arms' table."""
    if stats.boot is None:
        return []
    stages = stats.stages()
    levels = [stage for _, stage in severity_levels(stats)]
    natural = [s for s in ("natural", "natural_clear") if s in stages]
    columns = ["test", *occluded_conditions(stats), *levels, *natural]
    pairs = [pair for pair in arms if all(label in stats.groups for label in pair)]
    return [(*pair, stage, "f1_fg") for pair in pairs for stage in columns]


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
        *md_header(["model", *(condition_title(c) for c in columns)]),
    ]
    for label in stats.groups:
        lines.append(md_row([label, *(stats.cell(label, c, "f1_fg", 100, 1) for c in columns)]))
    lines += [
        "",
        "Drop from clean (mean F1 points, clean minus occluded, on the same images and seeds): how much each "
        "condition costs each configuration, with its interval; overlapping intervals do not establish which "
        "configuration is more robust.",
        "",
        *md_header(["model", *(condition_title(c) for c in conditions)]),
    ]
    for label in stats.groups:
        lines.append(md_row([label, *(stats.cell(label, "test", "f1_fg", 100, 1, minus=c) for c in conditions)]))
    levels = severity_levels(stats)
    if levels:
        lines += [
            "",
            "Severity: mean F1 (%) as random occluders hide more of the face (the figure below draws it).",
            "",
            *md_header(["model", "0 (clean)", *(f"{level:g}" for level, _ in levels)]),
        ]
        for label in stats.groups:
            stages = ["test", *(stage for _, stage in levels)]
            lines.append(md_row([label, *(stats.cell(label, stage, "f1_fg", 100, 1) for stage in stages)]))
    lines += [
        "",
        "What each occluder costs. *Visible*: mean F1 on the pixels the occluder leaves visible, of the clean "
        "photo's prediction and of the occluded photo's, and the loss between them (clean minus occluded: worse "
        "parsing of what can still be seen). *Hidden*: of the occluder's pixels that hide face or hair, the share "
        "predicted as the very part they hide (*hallucinated*) and as background (*not face*, what LaPa's "
        "annotations say is there); the rest went to another part. In %, with 95 % intervals.",
        "",
        *md_header(
            ["condition", "model", "visible: clean", "visible: occluded", "loss on visible", "hallucinated", "not face"]
        ),
    ]
    for condition in conditions:
        for label in detailed:
            lines.append(
                md_row(
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
    lines += kinds_table(stats, conditions, detailed)
    hidden_classes = mean_f1_classes(jobs)
    lines += [
        "",
        "Hallucination per hidden class, *random* condition: of each class's pixels under the occluders, the share "
        "predicted as that class (%).",
        "",
        *md_header(["model", *hidden_classes]),
    ]
    for label in detailed:
        cells = [stats.cell(label, "occluded/hidden", f"hallucinated/{c}", 100, 1) for c in hidden_classes]
        lines.append(md_row([label, *cells]))
    tests = arm_tests(stats, arms)
    if tests:
        lines += [
            "",
            "Trained with occluders minus trained clean (the same architecture and settings), mean F1 points on "
            "the same images: the difference, its 95 % interval (runs and images random) and its p-value, "
            "Holm-adjusted over the report's family. The real objects are a family that training never draws.",
            "",
        ]
        stages = list(dict.fromkeys(stage for _, _, stage, _ in tests))
        lines += md_header(["model", *(condition_title(c) for c in stages)])
        for pair in dict.fromkeys(test[:2] for test in tests):
            cells = []
            for stage in stages:
                d = stats.difference((*pair, stage, "f1_fg"))
                cells.append(f"{100 * d.mean:+.1f} {format_span(d)}, p {format_p(d.p)}" if d else "-")
            lines.append(md_row([" - ".join(pair), *cells]))
    return "\n".join([*lines, ""])
