"""The report's inference on a study-shaped set of results, built in memory (no training): the comparator chosen on
validation, one family of tests Holm-adjusted together, conditional comparisons marked, per-kind occluder shares,
and figures whose series can be told apart."""

from pathlib import Path

import numpy as np
import pytest

from facseg.data.labels import LabelMap
from facseg.report import Job, write_report
from facseg.report.bootstrap import holm
from facseg.report.estimates import Statistics
from facseg.report.figures import plot_severity, png
from facseg.report.occlusion import arm_tests
from facseg.report.tables import comparison_tests

LAPA = LabelMap.named("lapa")
IMAGES, KINDS = 40, np.array(["hand", "bar"] * 20)
STAGES = {  # accuracy offset of each stage from the clean one
    "test": 0.0,
    "test/crop": 0.0,
    "occluded": -0.1,
    "occluded/inside": -0.2,
    "occluded/hidden": -0.3,
    "occluded/outside": -0.05,
    "occluded/visible_clean": 0.0,
    "occluded_severity/0.1": -0.05,
    "occluded_severity/0.1/hidden": -0.2,
    "occluded_severity/0.3": -0.15,
    "occluded_severity/0.3/hidden": -0.4,
}
ARCHITECTURES = {"unet": 0.9, "segnet": 0.8, "pspnet": 0.75}


def matrices(rng: np.random.Generator, accuracy: float) -> np.ndarray:
    """N x C x C: each image's truth (every class present), a share `accuracy` right, the rest as background."""
    c = len(LAPA)
    truth = rng.multinomial(3000, np.r_[0.5, np.full(c - 1, 0.5 / (c - 1))], size=IMAGES)
    right = rng.binomial(truth, np.clip(accuracy + rng.normal(0, 0.03, truth.shape), 0, 1))
    out = np.zeros((IMAGES, c, c))
    idx = np.arange(c)
    out[:, idx, idx] = right
    out[:, 1:, 0] = (truth - right)[:, 1:]
    out[:, 0, 1] = (truth - right)[:, 0]
    return out


def job(rng, label: str, accuracy: float, validation: float, seed: int) -> Job:
    per_image = {"names": np.array([f"img{i}" for i in range(IMAGES)])}
    for stage, offset in STAGES.items():
        confusion = matrices(rng, accuracy + offset)
        per_image[f"{stage}/confusion"] = confusion
        per_image[f"{stage}/squared_error"] = confusion.sum((1, 2)) * (1 - accuracy)
        per_image[f"{stage}/pixels"] = confusion.sum((1, 2))
    per_image["occluded/hidden/occluder_kind"] = KINDS
    metrics = {"model": label.split()[0], "data": "synthetic", "eval_resolution": "original", "val/f1_fg": validation}
    timing = (24.0, 990.3, 38.6)[seed]  # milliseconds a seed's run timed its net in, one on a busy machine
    metrics |= {"cost/image_size": 128, "cost/device": "cpu (2 threads)", "cost/ms_per_image": timing}
    path = Path(f"/nonexistent/{label.replace(' ', '_')}_{seed}")
    return Job(name=path.name, path=path, status="ok", label=label, metrics=metrics, per_image=per_image)


@pytest.fixture(scope="module")
def jobs():
    rng = np.random.default_rng(0)
    out = []
    for name, accuracy in ARCHITECTURES.items():
        # SegNet is best on validation though U-Net is best on test: the comparator must be SegNet.
        validation = 0.95 if name == "segnet" else 0.5
        for variant in ("", " (occlusion-trained)"):
            out += [job(rng, name + variant, accuracy + 0.01 * s, validation, s) for s in range(3)]
        out.append(job(rng, f"{name} x3 seeds (equal)", accuracy + 0.02, 0.5, 0))
    return out


ARMS = [(f"{name} (occlusion-trained)", name) for name in ARCHITECTURES]


def test_the_comparator_is_chosen_on_validation_never_on_test(jobs):
    stats = Statistics(jobs)
    assert stats.comparator(list(ARCHITECTURES)) == "segnet"
    tests = comparison_tests(stats, list(ARCHITECTURES))
    assert ("unet x3 seeds (equal)", "segnet", "test", "f1_fg") in tests
    assert ("unet x3 seeds (equal)", "unet", "test", "f1_fg") in tests  # and against its own members


def test_every_printed_p_value_is_adjusted_over_one_family(jobs, tmp_path):
    report = write_report(tmp_path, jobs=jobs, compared=list(ARCHITECTURES), arms=ARMS).read_text()
    stats = Statistics(jobs)
    tests = comparison_tests(stats, list(ARCHITECTURES), list(LAPA.mean_f1)) + arm_tests(stats, ARMS)
    size = stats.family(tests)
    assert f"This report's family: {size} tests." in report and size == len(set(tests))
    raw = [stats._tests[t].p for t in dict.fromkeys(tests)]
    assert [stats.adjusted[t] for t in dict.fromkeys(tests)] == holm(raw)
    unet_segnet = stats.difference(("unet", "segnet", "test", "f1_fg"))
    assert unet_segnet.p >= stats._tests["unet", "segnet", "test", "f1_fg"].p and not unet_segnet.conditional
    latency = next(line for line in report.splitlines() if line.startswith("| unet | 3 |")).split(" | ")[-1]
    assert latency == "24.0 |"  # the fastest run's timing: the others ran on a busy machine
    row = next(line for line in report.splitlines() if line.startswith("| unet | segnet |"))
    assert row.endswith("| runs and images |")
    ensemble = next(line for line in report.splitlines() if line.startswith("| unet x3 seeds (equal) | unet |"))
    assert ensemble.endswith("| images only, given these runs |")
    assert "| occluded | bar | 20 | unet |" in report.replace("random", "occluded")  # the per-kind shares


def test_the_severity_figure_gives_each_architecture_one_colour_and_each_variant_its_own_line(jobs):
    stats = Statistics(jobs)
    fig = plot_severity(jobs, stats)
    png(fig)  # drawn: the legends have their places
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 3  # 9 series: small multiples (single nets, variants, ensembles)
    colours, looks = {}, set()
    for ax in axes:
        for line in ax.lines:
            colours.setdefault(line.get_color(), set()).add(line.get_label().split()[0])
            looks.add((line.get_color(), str(line.get_linestyle()), line.get_marker()))
        legend = ax.get_legend()
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # beside the data, not over it
    assert all(len(architectures) == 1 for architectures in colours.values())  # no colour used twice
    assert len(colours) == 3 and len(looks) == 9


def test_a_test_cut_short_is_reported_on_the_images_it_scored(tmp_path):
    """trainer.limit_test_batches: per_image.npz names the split's images but scored only some of them."""
    rng = np.random.default_rng(1)
    jobs = [job(rng, name, accuracy, 0.5, s) for name, accuracy in ARCHITECTURES.items() for s in range(2)]
    for j in jobs:
        for stage in STAGES:
            for key in ("confusion", "squared_error", "pixels"):
                j.per_image[f"{stage}/{key}"] = j.per_image[f"{stage}/{key}"][:8]
            j.per_image[f"{stage}/index"] = np.arange(8)
        j.per_image["occluded/hidden/occluder_kind"] = KINDS[:8]
    stats = Statistics(jobs)
    assert stats.images == [f"img{i}" for i in range(8)]
    report = write_report(tmp_path, jobs=jobs).read_text()
    assert "| unet | 2 | " in report and "| unet | segnet |" in report
