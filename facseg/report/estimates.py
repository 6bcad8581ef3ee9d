"""Each configuration's metrics with 95 % intervals and paired differences, from its runs' per-image results
(facseg.report.bootstrap); configurations without them fall back to mean ± std over seeds from metrics.json."""

from __future__ import annotations

import numpy as np

from facseg.report.bootstrap import Bootstrap, Difference, Estimate, Runs, interval, paired
from facseg.report.runs import Job, finite_values, groups, label_map, mean_std

# Where metrics.json keeps each stage's values (runs without per_image.npz are reported as mean +- std of these).
METRICS_PREFIX = {
    "test": "test/",
    "test/crop": "test/crop/",
    "occluded": "occluded/",
    "drop": "occluded/drop/",
    "occluded/hidden": "occluded/inside/",
}


def mean_std_cell(runs: list[Job], key: str, scale: float, digits: int) -> str:
    stats = mean_std(runs, key)
    if stats is None:
        return "-"
    mean, std = stats[0] * scale, stats[1] * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(runs) > 1 else f"{mean:.{digits}f}"


class Statistics:
    """Each configuration's metrics with 95 % intervals (facseg.report.bootstrap: bootstrap over seeds and test
    images, one shared draw of images for the whole report) and paired tests, from the runs' per_image.npz;
    configurations without them are reported as mean ± std over seeds from metrics.json."""

    def __init__(self, jobs: list[Job]) -> None:
        self.groups = groups(jobs)
        self.labels = label_map(jobs)
        self.classes = list(self.labels.names)
        self.mean_f1 = [self.classes.index(c) for c in self.labels.mean_f1]
        # The naturally occluded subsets' mean F1 leaves the occluder classes out (facseg.scoring.evaluator)
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
            return mean_std_cell(self.groups[label], prefix + metric, scale, digits) if prefix and not minus else "-"
        return format_estimate(found, scale, digits)

    def seeds(self, label: str) -> int:
        found = self.estimate(label, "test", "f1_fg")
        return found.seeds if found else len(finite_values(self.groups[label], "test/f1_fg"))

    def differences(self, a: str, b: str, keys: list[str], stage: str = "test") -> list[Difference] | None:
        runs = [self.runs(label, stage) for label in (a, b)]
        if any(r is None for r in runs):
            return None
        return paired(self.boot, *runs, self.averaged(stage), self.classes, keys)

    def stages(self) -> list[str]:
        """The stages the runs kept per-image results of (per_image.npz), in their order."""
        tested = next((run.per_image for runs in self.groups.values() for run in runs if run.per_image), {})
        return list(dict.fromkeys(k.rsplit("/", 1)[0] for k in tested if k.endswith("/confusion")))


def format_estimate(found: Estimate, scale: float, digits: int) -> str:
    if not np.isfinite(found.mean):
        return "-"
    return f"{found.mean * scale:.{digits}f} [{found.low * scale:.{digits}f}, {found.high * scale:.{digits}f}]"
