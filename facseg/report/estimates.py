"""Each configuration's metrics with 95 % intervals and paired differences, from its runs' per-image results
(facseg.report.bootstrap); configurations without them fall back to mean ± std over seeds from metrics.json.

The report's tests form one family: `Statistics.family` computes every test a report prints and corrects them
together (Holm), so a reading that rests on any of them has its error rate controlled across all of them."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from facseg.report.bootstrap import Bootstrap, ClassSet, Estimate, Runs, holm, interval, paired
from facseg.report.runs import Job, finite_values, groups, label_map, mean_std

# Where metrics.json keeps each stage's values (runs without per_image.npz are reported as mean +- std of these).
METRICS_PREFIX = {
    "test": "test/",
    "test/crop": "test/crop/",
    "occluded": "occluded/",
    "drop": "occluded/drop/",
    "occluded/hidden": "occluded/inside/",
}
VALIDATION = "val/f1_fg"  # what picks a report's comparator (train.yaml's optimized_metric), never a test metric

Test = tuple[str, str, str, str]  # (A, B, stage, metric): A minus B at a stage


def mean_std_cell(runs: list[Job], key: str, scale: float, digits: int) -> str:
    stats = mean_std(runs, key)
    if stats is None:
        return "-"
    mean, std = stats[0] * scale, stats[1] * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(runs) > 1 else f"{mean:.{digits}f}"


class Statistics:
    """Each configuration's metrics with 95 % intervals (facseg.report.bootstrap: seeds as random, one shared draw
    of test images for the whole report) and paired tests, from the runs' per_image.npz; configurations without
    them are reported as mean ± std over seeds from metrics.json."""

    def __init__(self, jobs: list[Job]) -> None:
        self.groups = groups(jobs)
        self.labels = label_map(jobs)
        self.classes = list(self.labels.names)
        mean_f1 = [self.classes.index(c) for c in self.labels.mean_f1]
        # The naturally occluded subsets' mean F1 leaves the occluder classes out (facseg.scoring.evaluator)
        faces = [i for i in mean_f1 if self.classes[i] not in self.labels.occluders]
        tested = [run.per_image for runs in self.groups.values() for run in runs if run.per_image]
        self.images = scored_names(tested[0], "test") if tested else []
        self.boot = Bootstrap(len(self.images)) if tested else None
        self._runs: dict[tuple, Runs | None] = {}
        self._tests: dict[Test, Estimate | None] = {}
        self.adjusted: dict[Test, float] = {}
        self.class_set = self.faces_set = None
        if tested:  # one class set for every mean: the classes the clean split's truth holds
            truth = Runs.stack(tested[:1], "test")
            self.class_set = ClassSet.of(self.classes, mean_f1, truth)
            self.faces_set = ClassSet.of(self.classes, faces, truth)

    def runs(self, label: str, stage: str, keep: np.ndarray | None = None) -> Runs | None:
        """The configuration's seeds at a stage of per_image.npz (`keep`: on a subset of the images); None unless
        every seed has it, on the same images."""
        if keep is not None:
            if (label, stage, keep.tobytes()) not in self._runs:
                runs = self.runs(label, stage)
                self._runs[label, stage, keep.tobytes()] = runs.images(keep) if runs else None
            return self._runs[label, stage, keep.tobytes()]
        if (label, stage) not in self._runs:
            arrays = [run.per_image for run in self.groups[label]]
            usable = self.boot is not None and all(
                f"{stage}/confusion" in a and scored_names(a, stage) == self.images for a in arrays
            )  # runs on other test images (another data set, a cut-short test) fall back to mean +- std
            self._runs[label, stage] = Runs.stack(arrays, stage) if usable else None
        return self._runs[label, stage]

    def averaged(self, stage: str) -> ClassSet:
        return self.faces_set if stage.startswith("natural") else self.class_set

    def estimate(
        self, label: str, stage: str, metric: str, minus: str | None = None, keep: np.ndarray | None = None
    ) -> Estimate | None:
        """The metric at a stage of per_image.npz; with `minus`, the stage minus that stage (same images, seeds);
        `keep`: on a subset of the test images. `drop`: clean minus the primary occluded condition."""
        if stage == "drop":
            stage, minus = "test", "occluded"
        runs = self.runs(label, stage, keep)
        subtracted = self.runs(label, minus, keep) if minus else None
        if runs is None or (minus and subtracted is None):
            return None
        return interval(self.boot, runs, self.averaged(stage), metric, subtracted, keep)

    def cell(self, label: str, stage: str, metric: str, scale: float, digits: int, minus: str | None = None) -> str:
        found = self.estimate(label, stage, metric, minus)
        if found is None:
            prefix = METRICS_PREFIX.get(stage)
            return mean_std_cell(self.groups[label], prefix + metric, scale, digits) if prefix and not minus else "-"
        return format_estimate(found, scale, digits)

    def seeds(self, label: str) -> int:
        found = self.estimate(label, "test", "f1_fg")
        return found.seeds if found else len(finite_values(self.groups[label], "test/f1_fg"))

    def difference(self, test: Test) -> Estimate | None:
        """A minus B (test = (A, B, stage, metric)); its p-value Holm-adjusted over the report's family once
        `family` has run (NaN for a test outside it: no p-value is printed unadjusted)."""
        if test not in self._tests:
            a, b, stage, metric = test
            runs = [self.runs(label, stage) for label in (a, b)]
            found = None if any(r is None for r in runs) else paired(self.boot, *runs, self.averaged(stage), [metric])
            self._tests[test] = found[0] if found else None
        found = self._tests[test]
        return replace(found, p=self.adjusted.get(test, float("nan"))) if found else None

    def family(self, tests: list[Test]) -> int:
        """Every test of the report, adjusted together (Holm); returns the family's size (tests with a p-value)."""
        found = {test: self.difference(test) for test in dict.fromkeys(tests)}
        kept = [test for test, d in found.items() if d is not None]
        raw = [self._tests[test].p for test in kept]
        self.adjusted = dict(zip(kept, holm(raw)))
        return int(np.isfinite(raw).sum())

    def comparator(self, compared: list[str]) -> str:
        """The configuration others are compared against: the best on validation (`VALIDATION`, mean over seeds)."""
        scores = {label: finite_values(self.groups[label], VALIDATION) for label in compared}
        return max(compared, key=lambda label: np.mean(scores[label]) if scores[label] else -np.inf)

    def kinds(self, condition: str) -> np.ndarray | None:
        """Each test image's occluder kind under a condition (the same for every run: occluders are fixed)."""
        tested = next((run.per_image for runs in self.groups.values() for run in runs if run.per_image), {})
        return tested.get(f"{condition}/hidden/occluder_kind")

    def stages(self) -> list[str]:
        """The stages the runs kept per-image results of (per_image.npz), in their order."""
        tested = next((run.per_image for runs in self.groups.values() for run in runs if run.per_image), {})
        return list(dict.fromkeys(k.rsplit("/", 1)[0] for k in tested if k.endswith("/confusion")))


def scored_names(per_image: dict[str, np.ndarray], stage: str) -> list[str]:
    """The test images a stage scored, in order (all of the split's, unless its test was cut short, say by
    `trainer.limit_test_batches`)."""
    names = np.asarray(per_image["names"])
    index = per_image.get(f"{stage}/index")
    return names[index].tolist() if index is not None else names.tolist()


def format_estimate(found: Estimate, scale: float, digits: int) -> str:
    if not np.isfinite(found.mean):
        return "-"
    return f"{found.mean * scale:.{digits}f} [{found.low * scale:.{digits}f}, {found.high * scale:.{digits}f}]"
