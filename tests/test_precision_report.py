"""bf16 against float32, paired by seed (facseg.report.precision): the verdict each net's default rests on."""

from pathlib import Path

import numpy as np
import pytest

from facseg.data.labels import LabelMap
from facseg.report.precision import BF16, FLOAT32, MARGIN, SEEDS, compare, markdown
from facseg.report.runs import Job

LABELS = LabelMap.from_config(
    {"name": "toy", "names": ["background", "skin", "nose"], "colours": [[0, 0, 0], [255, 0, 0], [0, 255, 0]]}
)
IMAGES = 60


def matrices(rng, accuracy: float, pixels: int = 2000) -> np.ndarray:
    """IMAGES x 3 x 3 confusion matrices of a net right on about `accuracy` of each image's pixels."""
    out = np.zeros((IMAGES, 3, 3), np.int64)
    for i in range(IMAGES):
        truth = rng.integers(0, 3, pixels)
        pred = np.where(rng.random(pixels) < accuracy, truth, (truth + 1) % 3)
        np.add.at(out[i], (truth, pred), 1)
    return out


def run(model: str, seed: int, precision: str, confusion: np.ndarray, minutes: float) -> Job:
    """A finished run as facseg.report.runs.load_job reads it."""
    tp = confusion.sum(0).diagonal()[1:]
    f1 = 2 * tp / (confusion.sum((0, 1))[1:] + confusion.sum((0, 2))[1:])
    return Job(
        name=f"{model}-{precision}-s{seed}",
        path=Path("."),
        status="ok",
        label=model,
        overrides=[f"trainer.precision={precision}"],
        metrics={"model": model, "seed": seed, "test/f1_fg": float(f1.mean()), "labels": LABELS.to_dict()},
        per_image={
            "names": np.array([f"face{i}" for i in range(IMAGES)]),
            "test/confusion": confusion,
            "test/squared_error": np.zeros(IMAGES),
            "test/pixels": confusion.sum((1, 2)),
        },
        provenance={"training": {"precision": precision, "seconds": 60.0 * minutes}},
    )


@pytest.fixture(scope="module")
def found():
    rng = np.random.default_rng(0)
    jobs = []
    for seed in range(5):
        accuracy = 0.9 + 0.01 * rng.standard_normal()  # seeds differ
        same = matrices(rng, accuracy)
        jobs += [run("unet", seed, FLOAT32, same, 10.0), run("unet", seed, BF16, matrices(rng, accuracy), 7.0)]
        jobs += [
            run("segnet", seed, FLOAT32, matrices(rng, 0.9), 20.0),
            run("segnet", seed, BF16, matrices(rng, 0.85), 12.0),
        ]
    jobs.append(run("unet", 5, FLOAT32, matrices(rng, 0.9), 10.0))  # a seed without its bf16 run
    return compare(jobs)


def test_a_net_whose_bf16_runs_match_its_float32_runs_keeps_bf16(found):
    unet = found["unet"]
    assert unet["seeds"] == [0, 1, 2, 3, 4]  # the unpaired seed left out
    assert unet["test"]["low"] < 0 < unet["test"]["high"] and unet["test"]["low"] >= MARGIN
    assert unet["bf16_keeps"] and "occluded" not in unet  # these runs had no occluded test
    assert (unet[FLOAT32]["training_minutes"], unet[BF16]["training_minutes"]) == (10.0, 7.0)


def test_a_net_that_loses_accuracy_in_bf16_stays_float32(found):
    segnet = found["segnet"]
    # About 5 points of mean F1 lost (accuracy 0.85 against 0.9), and its interval says so.
    assert -0.07 < segnet["test"]["difference"] < -0.03 and segnet["test"]["high"] < MARGIN
    assert not segnet["bf16_keeps"] and segnet["test"]["p"] < 0.05
    table = markdown(found)
    assert "| segnet | 5 |" in table and "| 20.0 / 12.0 | no: stays float32 |" in table
    assert "| unet | 5 |" in table and "| 10.0 / 7.0 | yes |" in table
    seed = found["segnet"]
    a, b = seed[FLOAT32]["f1_fg_by_seed"][2], seed[BF16]["f1_fg_by_seed"][2]
    assert f"seed 2: {100 * a:.2f} -> {100 * b:.2f} ({100 * (b - a):+.2f})" in table and b < a


def test_fewer_seeds_than_the_check_needs_give_no_verdict_yet():
    rng = np.random.default_rng(1)
    jobs = [run("unet", s, p, matrices(rng, 0.9), 10.0) for s in range(SEEDS - 1) for p in (FLOAT32, BF16)]
    early = compare(jobs)
    assert early["unet"]["seeds"] == [0, 1, 2, 3] and not early["unet"]["bf16_keeps"]
    assert "| not yet (4 of 5 seeds): stays float32 |" in markdown(early)
