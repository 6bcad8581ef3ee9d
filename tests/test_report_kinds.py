"""The report's section on the kinds of error, on results built in memory from real label maps (no training): a
net with clean edges and stray specks against one with ragged edges and no specks; the intervals, the family of
tests and the reading of the study's claims."""

from pathlib import Path

import numpy as np
import pytest

from facseg.data.labels import LabelMap
from facseg.metrics.errors import ERROR_ARRAYS, ErrorRules, image_errors, pooled_errors, summed
from facseg.report import Job, write_report
from facseg.report.estimates import Statistics
from facseg.report.kinds import error_tests, plot_error_map, plot_f1_vs_boundary
from tests.test_errors import LEFT_EYE, RIGHT_EYE

LAPA = LabelMap.named("lapa")
RULES = ErrorRules.of(LAPA)
IMAGES = 12


def face(rng: np.random.Generator) -> np.ndarray:
    """A face-like truth: skin, brows, eyes, nose and lips, each one region, placed with a little jitter."""
    out = np.zeros((48, 48), np.uint8)
    dy, dx = rng.integers(-2, 3, 2)
    for k, (y, x, h, w) in enumerate(
        [(8, 8, 34, 32), (14, 12, 2, 8), (14, 28, 2, 8), (18, 13, 3, 6), (18, 29, 3, 6), (22, 22, 7, 4)], start=1
    ):
        out[y + dy : y + dy + h, x + dx : x + dx + w] = k
    out[33 + dy : 35 + dy, 18 + dx : 30 + dx] = 7  # upper lip
    out[35 + dy : 37 + dy, 18 + dx : 30 + dx] = 9  # lower lip
    return out


def parse(truth: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    if kind == "specks":  # edges right to a pixel, and a stray eye on every other face
        pred = np.roll(truth, 1, axis=1)
        if rng.random() < 0.5:
            pred[44:46, 2:4] = LEFT_EYE
        if rng.random() < 0.3:  # and a right eye taken for the left one
            pred[pred == RIGHT_EYE] = LEFT_EYE
        return pred
    return np.roll(truth, 3, axis=0)  # every edge 3 px off


def job(label: str, kind: str, seed: int) -> Job:
    rng = np.random.default_rng(seed)
    truths = [face(rng) for _ in range(IMAGES)]
    preds = [parse(t, rng, kind) for t in truths]
    per_image = {"names": np.array([f"img{i}" for i in range(IMAGES)])}
    c = len(LAPA)
    for stage in ("test", "occluded"):
        confusion = np.stack(
            [np.bincount(t.ravel() * c + p.ravel(), minlength=c * c).reshape(c, c) for t, p in zip(truths, preds)]
        )
        errors = [image_errors(p, t, RULES) for p, t in zip(preds, truths)]
        per_image |= {f"{stage}/confusion": confusion, f"{stage}/squared_error": np.zeros(IMAGES)}
        per_image |= {f"{stage}/pixels": confusion.sum((1, 2))}
        per_image |= {f"{stage}/{name}": np.stack([e[name] for e in errors]) for name in ERROR_ARRAYS}
    metrics = {"model": label, "data": "synthetic", "eval_resolution": "original", "val/f1_fg": 0.5}
    path = Path(f"/nonexistent/{label}_{seed}")
    samples = {"test/label": np.stack(truths[:2]), "test/prediction": np.stack(preds[:2])}
    samples["test/image"] = np.zeros((2, 48, 48, 3), np.uint8)
    confusion = {"test": per_image["test/confusion"].sum(0)}
    return Job(path.name, path, "ok", label, metrics=metrics, confusion=confusion, per_image=per_image, samples=samples)


@pytest.fixture(scope="module")
def jobs():
    return [job("unet", "specks", s) for s in range(3)] + [job("pspnet", "ragged", s) for s in range(3)]


def test_kinds_of_error_carry_the_seeds_mean_and_an_interval(jobs):
    stats = Statistics(jobs)
    found = stats.estimate("unet", "test", "bf1/2px")
    per_seed = []
    for run in stats.groups["unet"]:
        arrays = {name: run.per_image[f"test/{name}"] for name in ERROR_ARRAYS}
        present = run.per_image["test/confusion"].sum((0, 2)) > 0
        per_seed.append(pooled_errors(summed(arrays), RULES, present)["bf1/2px"])
    assert found.mean == pytest.approx(np.mean(per_seed)) and found.low < found.mean < found.high
    assert stats.estimate("pspnet", "test", "bf1/2px").mean < found.mean - 0.3  # 3 px off: only the sides match
    assert stats.estimate("pspnet", "test", "anatomy_ok").mean == 1.0
    assert 0 < stats.estimate("unet", "test", "anatomy_ok").mean < 1
    assert stats.estimate("unet", "test", "fragments/left_eye").mean > 0


def test_the_section_reads_the_claims_from_tests_in_the_reports_family(jobs, tmp_path):
    report = write_report(tmp_path, jobs=jobs, compared=["unet", "pspnet"]).read_text()
    stats = Statistics(jobs)
    tests = error_tests(stats, ["unet", "pspnet"])
    assert ("unet", "pspnet", "occluded", "hd95") in tests and ("unet", "pspnet", "test", "anatomy_ok") in tests
    assert ("pspnet", "unet", "test", "anatomy_ok") not in tests  # the claim reads the same test, reversed
    assert "## Kinds of error: boundaries, structure, the jawline" in report
    claims = {line.split(" | ")[0].strip("| "): line.split(" | ")[-1].strip(" |") for line in report.splitlines()}
    assert claims["U-Net handles fine-grained details better than PSPNet"] == "supports it"
    assert claims["PSPNet preserves global structure better than U-Net"] == "supports it"
    assert "jaw NME" not in report  # random label maps have no landmarks; no jaw outline below eyes either
    swaps = next(line for line in report.splitlines() if line.startswith("| model | left_eyebrow / right_eyebrow"))
    rows = report.splitlines()[report.splitlines().index(swaps) + 2 :][:2]
    assert rows[0].startswith("| unet | 0.00 | ") and float(rows[0].split(" | ")[2].strip(" |")) > 0  # its eyes
    assert rows[1] == "| pspnet | 0.00 | 0.00 |"
    for figure in ("f1_vs_boundary_f", "error_map", "left_right_swaps"):
        assert f"figures/{figure}.png" in report
    assert (tmp_path / "figures" / "f1_vs_boundary_f.png").stat().st_size > 10_000
    size = int(report.split("This report's family: ")[1].split(" ")[0])
    assert size >= len(set(tests))  # the section's tests are in the one family


def test_the_f1_against_boundary_figure_shows_the_compared_configurations_only(jobs):
    stats = Statistics(jobs)
    legend = plot_f1_vs_boundary(jobs, stats, ["pspnet"]).axes[0].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["pspnet"]  # a study's ensembles stay in the tables
    legend = plot_f1_vs_boundary(jobs, stats).axes[0].get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["unet", "pspnet"]


def test_the_error_map_shows_the_truth_and_the_compared_configurations_only(jobs):
    stats = Statistics(jobs)
    titles = [ax.get_title() for ax in plot_error_map(jobs, stats, ["pspnet"]).axes]
    assert titles == ["truth", "pspnet"]
    titles = [ax.get_title() for ax in plot_error_map(jobs, stats).axes]
    assert titles == ["truth", "unet", "pspnet"]
