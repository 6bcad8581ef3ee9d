"""The kinds of error (facseg.metrics.errors and its definitions): hand cases with known answers, and every count
against a plain, slow implementation of each definition written here."""

from __future__ import annotations

import json
import shutil
from collections import deque

import numpy as np
import pytest
import torch
from PIL import Image

from facseg import cli
from facseg.data.labels import LabelMap
from facseg.metrics.errors import RADII, WIDTHS, ErrorRules, errors_of, image_errors, pooled_errors, summed
from facseg.metrics.region import SegmentationMetrics
from facseg.metrics.structure import components
from facseg.scoring.parses import UnscorableParses, score_parses
from tests.helpers import CELEBAMASK_MINI

LAPA = LabelMap.named("lapa")
RULES = ErrorRules.of(LAPA)
SKIN, LEFT_EYE, RIGHT_EYE, NOSE = (LAPA.names.index(n) for n in ("skin", "left_eye", "right_eye", "nose"))


def pooled(pred: np.ndarray, truth: np.ndarray, landmarks: np.ndarray | None = None) -> dict[str, float]:
    return errors_of(pred, truth, "lapa", landmarks)  # the public entry for two label maps


# Plain implementations of each definition, pixel by pixel.


def slow_boundary(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    for y in range(h):
        for x in range(w):
            if mask[y, x]:
                out[y, x] = any(
                    0 <= y + dy < h and 0 <= x + dx < w and not mask[y + dy, x + dx]
                    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
                )
    return out


def slow_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Mask pixels with a pixel outside the mask, or outside the image, within `width` in Chebyshev distance."""
    h, w = mask.shape
    padded = np.zeros((h + 2 * width, w + 2 * width), bool)
    padded[width : width + h, width : width + w] = mask
    out = np.zeros_like(mask, dtype=bool)
    for y in range(h):
        for x in range(w):
            out[y, x] = mask[y, x] and not padded[y : y + 2 * width + 1, x : x + 2 * width + 1].all()
    return out


def nearest(points: np.ndarray, to: np.ndarray) -> np.ndarray:
    if len(to) == 0:
        return np.full(len(points), np.inf)
    return np.sqrt(((points[:, None, :] - to[None, :, :]) ** 2).sum(-1)).min(1)


def slow_components(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    h, w = mask.shape
    seen, found = set(), []
    for start in zip(*np.nonzero(mask)):
        if start in seen:
            continue
        part, queue = set(), deque([start])
        seen.add(start)
        while queue:
            y, x = queue.popleft()
            part.add((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    n = (y + dy, x + dx)
                    if 0 <= n[0] < h and 0 <= n[1] < w and mask[n] and n not in seen:
                        seen.add(n)
                        queue.append(n)
        found.append(part)
    return found


def slow_errors(pred: np.ndarray, truth: np.ndarray, k: int) -> dict:
    pm, tm = pred == k, truth == k
    pb, tb = np.argwhere(slow_boundary(pm)), np.argwhere(slow_boundary(tm))
    to_truth, to_pred = nearest(pb, tb), nearest(tb, pb)
    boundary = [[(to_truth <= t).sum(), len(pb), (to_pred <= t).sum(), len(tb)] for t in RADII]
    band = []
    for d in WIDTHS:
        a, b = slow_band(pm, d), slow_band(tm, d)
        band.append([(a & b).sum(), (a | b).sum()])
    if not pm.any() and not tm.any():
        hd = np.nan
    elif len(pb) == 0 or len(tb) == 0:
        hd = np.hypot(*truth.shape)
    else:
        hd = max(np.percentile(to_truth, 95), np.percentile(to_pred, 95))
    fragments = sum(1 for part in slow_components(pm) if not any(tm[p] for p in part))
    return {"boundary": np.array(boundary), "band": np.array(band), "hd95": hd, "fragments": fragments}


def random_parse(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), np.uint8)
    for _ in range(8):
        k = int(rng.integers(0, 6))
        y, x = rng.integers(0, h), rng.integers(0, w)
        ry, rx = rng.integers(2, h // 2), rng.integers(2, w // 2)
        yy, xx = np.ogrid[:h, :w]
        out[((yy - y) / ry) ** 2 + ((xx - x) / rx) ** 2 <= 1] = k
    return out


@pytest.mark.parametrize("seed", range(4))
def test_every_count_equals_the_plain_definition(seed):
    rng = np.random.default_rng(seed)
    truth = random_parse(rng, 37, 45)
    pred = truth.copy()
    pred[rng.random(truth.shape) < 0.03] = rng.integers(0, 6)  # specks: fragments, ragged edges
    pred = np.roll(pred, int(rng.integers(-3, 4)), axis=int(rng.integers(0, 2)))
    found = image_errors(pred, truth, RULES)
    for k in range(len(LAPA.names)):
        expected = slow_errors(pred, truth, k)
        assert found["boundary"][k].tolist() == expected["boundary"].tolist(), k
        assert found["band"][k].tolist() == expected["band"].tolist(), k
        assert found["hd95"][k] == pytest.approx(expected["hd95"], nan_ok=True, abs=1e-4), k
        assert found["fragments"][k] == expected["fragments"], k


def stripe(top: int, bottom: int, h: int = 60, w: int = 50, k: int = SKIN) -> np.ndarray:
    out = np.zeros((h, w), np.uint8)
    out[top:bottom] = k
    return out


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_a_stripe_shifted_by_k_px_is_matched_from_a_tolerance_of_k(shift):
    """A full-width stripe (the image's edge is no boundary): each boundary pixel lies exactly `shift` px from the
    other's, so boundary F is 1 from t = shift and 0 below it, and HD95 is the shift."""
    found = pooled(stripe(20 + shift, 40 + shift), stripe(20, 40))
    for t in RADII:
        assert found[f"bf1/{t}px/skin"] == (1.0 if t >= shift else 0.0)
    assert found["hd95/skin"] == pytest.approx(shift)
    assert found["fragments/skin"] == 0 and found["anatomy_ok"] == 1.0
    # Boundary IoU: bands of width 2 at top and bottom (and 2 px at the image's left and right edges).
    band = lambda top: slow_band(stripe(top, top + 20) > 0, 2)  # noqa: E731
    a, b = band(20 + shift), band(20)
    assert found["biou/2px/skin"] == pytest.approx((a & b).sum() / (a | b).sum())


def square(mask: np.ndarray, y: int, x: int, size: int, k: int) -> np.ndarray:
    mask[y : y + size, x : x + size] = k
    return mask


def test_a_stray_blob_is_a_fragment_that_costs_boundary_precision_and_plausibility():
    truth = square(np.zeros((80, 80), np.uint8), 20, 20, 20, LEFT_EYE)
    pred = square(truth.copy(), 60, 60, 7, LEFT_EYE)  # the blob touches no true eye
    found = pooled(pred, truth)
    assert found["fragments/left_eye"] == 1 and found["fragments"] == 1
    precision, recall = 76 / (76 + 24), 1.0  # boundary pixels: the square's 76, the blob's 24
    assert found["bf1/2px/left_eye"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert found["anatomy_ok"] == 0.0  # two regions of one eye (the blob is over a tenth of the eye)
    assert found["hd95/left_eye"] > 30  # the blob's boundary is over 5 % of the prediction's
    speck = pooled(square(truth.copy(), 60, 60, 2, LEFT_EYE), truth)
    assert speck["fragments"] == 1 and speck["anatomy_ok"] == 1.0  # a speck is a fragment, not a second eye
    split = truth.copy()
    split[29:31] = 0  # a brow or an eye parted in two, as the truth may show it
    assert pooled(split, split)["anatomy_ok"] == 1.0 and pooled(split, truth)["anatomy_ok"] == 0.0


def test_a_hole_costs_boundary_precision_and_is_a_background_fragment():
    truth = square(np.zeros((80, 80), np.uint8), 10, 10, 60, SKIN)
    pred = square(truth.copy(), 38, 38, 4, 0)
    found = pooled(pred, truth)
    precision = 236 / (236 + 16)  # the square's boundary pixels, and the 16 skin pixels beside the 4 x 4 hole
    assert found["bf1/1px/skin"] == pytest.approx(2 * precision / (precision + 1))
    assert found["fragments/background"] == 1 and found["fragments/skin"] == 0
    assert found["fragments"] == 0  # the headline counts the mean-F1 classes, background out


def test_a_swapped_eye_is_implausible_and_a_missed_class_scores_the_diagonal():
    truth = square(square(np.zeros((60, 80), np.uint8), 20, 10, 8, LEFT_EYE), 20, 60, 8, RIGHT_EYE)
    truth = square(truth, 40, 35, 6, NOSE)
    pred = square(square(np.zeros_like(truth), 20, 10, 8, LEFT_EYE), 20, 60, 8, LEFT_EYE)  # nose missed
    found = pooled(pred, truth)
    assert found["anatomy_ok"] == 0.0
    assert found["hd95/nose"] == pytest.approx(np.hypot(60, 80))  # missed: the photo's diagonal
    assert found["bf1/2px/nose"] == 0.0 and found["biou/2px/nose"] == 0.0
    assert np.isnan(found["hd95/hair"]) and np.isnan(found["bf1/2px/hair"])  # absent from both: not counted
    assert pooled(truth, truth)["anatomy_ok"] == 1.0 and pooled(truth, truth)["bf1/1px"] == 1.0


def test_the_jaw_landmarks_at_a_known_distance_from_the_outline():
    h, w = 120, 100
    pred = np.zeros((h, w), np.uint8)
    pred[10:90, 10:90] = SKIN  # the face's outline: its bottom row is 89
    landmarks = np.zeros((106, 2))
    landmarks[:33] = np.stack([np.arange(20, 86, 2), np.full(33, 95)], 1)  # 6 px below the outline
    landmarks[66], landmarks[79] = (25, 40), (75, 40)  # inter-ocular distance 50
    assert pooled(pred, pred, landmarks)["jaw_nme"] == pytest.approx(6 / 50)
    assert np.isnan(pooled(pred, pred)["jaw_nme"])  # no landmarks: the outline's boundary F instead
    # Without landmarks: the face outline below the truth's eyes; the top edge (above the eyes) is not counted.
    truth = pred.copy()
    truth[30:34, 30:40] = LEFT_EYE
    lower = truth.copy()
    lower[10:13] = 0  # the prediction's top edge moves by 3 px: above the eyes, not the jaw
    assert pooled(lower, truth)["jaw_bf1/2px"] == 1.0
    shorter = truth.copy()
    shorter[85:90] = 0  # the chin moves up by 5 px
    assert pooled(shorter, truth)["jaw_bf1/2px"] < 0.8


def test_the_metric_pools_counts_over_images_and_batches():
    """SegmentationMetrics' kinds of error equal the pooled per-image counts, however the images are batched."""
    rng = np.random.default_rng(0)
    truths = [random_parse(rng, 30, 40) for _ in range(5)]
    preds = [np.roll(t, 2, axis=1) for t in truths]
    metric = SegmentationMetrics(LAPA, per_image=True, errors=True)
    for batch in ([0, 1], [2, 3, 4]):
        logits = torch.nn.functional.one_hot(torch.from_numpy(np.stack([preds[i] for i in batch])).long(), 11)
        target = torch.from_numpy(np.stack([truths[i] for i in batch])).long()
        metric.update(logits.permute(0, 3, 1, 2).float() * 20, target, index=torch.tensor(batch))
    results = metric.compute()
    one_by_one = [image_errors(p, t, RULES) for p, t in zip(preds, truths)]
    stacked = {k: np.stack([e[k] for e in one_by_one]) for k in RULES.shapes()}
    per_image = metric.per_image_results()
    for key, value in stacked.items():
        np.testing.assert_array_equal(per_image[key].numpy(), value, err_msg=key)
    present = per_image["confusion"].numpy().sum((0, 2)) > 0
    for key, value in pooled_errors(summed(stacked), RULES, present).items():
        assert float(results[key]) == pytest.approx(value, nan_ok=True, rel=1e-6), key


# facseg score: any parse, scored the same way.


def copy_truth(tiny_root, pred_dir):
    pred_dir.mkdir()
    for path in sorted((tiny_root / "test" / "labels").glob("*.png")):
        shutil.copy(path, pred_dir / path.name)
    return sorted(pred_dir.glob("*.png"))


def test_score_gives_a_runs_keys_and_scores_the_truth_itself_perfectly(tmp_path, tiny_root):
    copy_truth(tiny_root, tmp_path / "truth-as-parse")
    out = tmp_path / "scored.json"
    assert cli.main(["score", str(tmp_path / "truth-as-parse"), str(tiny_root), "--out", str(out)]) == 0
    found = json.loads(out.read_text())
    metric = SegmentationMetrics(LAPA, errors=True)
    metric.update(torch.zeros(1, len(LAPA), 32, 32), torch.zeros(1, 32, 32, dtype=torch.long))
    run_keys = {f"test/{k}" for k in metric.compute() if k != "confusion"}
    assert run_keys <= found.keys() and found["test/rmse"] is None  # a label map has no probabilities
    assert found["test/f1_fg"] == 1.0 and found["test/bf1/1px"] == 1.0 and found["test/biou/2px"] == 1.0
    assert found["test/hd95"] == 0.0 and found["test/fragments"] == 0.0 and found["test/anatomy_ok"] == 1.0
    assert 0 < found["test/jaw_nme"] < 0.03  # the landmarks lie about a pixel off the true outline
    assert found["test/jaw_bf1/2px"] is None  # the synthetic photos have landmarks


def test_score_says_each_kind_of_problem_in_one_line_and_writes_nothing(tmp_path, tiny_root):
    missing, resized, unknown, *_ = copy_truth(tiny_root, tmp_path / "parse")
    missing.unlink()
    with Image.open(resized) as image:
        image.resize((image.width + 1, image.height)).save(resized)
    label = np.asarray(Image.open(unknown)).copy()
    label[0, 0] = 20
    Image.fromarray(label).save(unknown)
    with pytest.raises(UnscorableParses) as raised:
        score_parses(tmp_path / "parse", tiny_root)
    lines = str(raised.value).splitlines()
    assert len(lines) == 3
    assert "no prediction for 1 of the split's photos" in lines[0] and missing.name in lines[0]
    assert "1 predictions are not their truth's size" in lines[1] and resized.name in lines[1]
    assert "class ids outside 0..10" in lines[2] and f"{unknown.name} has 20" in lines[2]
    out = tmp_path / "scored.json"
    assert cli.main(["score", str(tmp_path / "parse"), str(tiny_root), "--out", str(out)]) == 1
    assert not out.exists()


@pytest.mark.skipif(not CELEBAMASK_MINI.is_dir(), reason=f"{CELEBAMASK_MINI} is absent: the real-face check needs it")
def test_score_reads_celebamask_and_measures_the_jaw_by_its_outline(tmp_path):
    """A CelebAMask-HQ folder has no landmarks: the jaw by the face outline below the eyes; its truth scores 1."""
    ids = (CELEBAMASK_MINI / "val.txt").read_text().split()
    parse = tmp_path / "parse"
    parse.mkdir()
    for name in ids:
        shutil.copy(CELEBAMASK_MINI / "masks" / f"{name}.png", parse / f"{name}.png")
    found = score_parses(parse, CELEBAMASK_MINI, split="val")
    assert found["val/f1_fg"] == 1.0 and found["val/jaw_bf1/2px"] == 1.0 and found["val/jaw_nme"] is None
    assert found["val/hd95/l_eye"] == 0.0 and found["val/anatomy_ok"] == 1.0  # the truth is as plausible as itself
    # Why a region, not a component: the masks' own stray pixels (docs/protocol.md, anatomy_ok).
    lips = [components(np.asarray(Image.open(parse / f"{name}.png")) == 11)[0] for name in ids]  # u_lip
    assert np.mean(np.array(lips) > 1) > 0.25
