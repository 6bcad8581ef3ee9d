import math

import pytest
import torch
import torch.nn.functional as F

from facseg.metrics.region import SegmentationMetrics
from facseg.metrics.top_class import top_class

NAMES = ["background", "a", "b"]


def logits_for(pred: torch.Tensor, num_classes: int = 3) -> torch.Tensor:
    """Logits whose argmax is `pred` (N x H x W)."""
    return F.one_hot(pred, num_classes).permute(0, 3, 1, 2).float() * 10


def test_values_from_a_hand_computed_confusion_matrix():
    target = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    metric = SegmentationMetrics(NAMES)
    metric.update(logits_for(pred), target)
    out = metric.compute()
    # Rows = target, columns = prediction: [[1,1,0],[0,2,0],[1,0,1]]
    assert metric.confmat.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    iou = [1 / 3, 2 / 3, 1 / 2]
    f1 = [2 / 4, 4 / 5, 2 / 3]
    for name, i, f in zip(NAMES, iou, f1):
        assert out[f"iou/{name}"].item() == pytest.approx(i)
        assert out[f"f1/{name}"].item() == pytest.approx(f)
    assert out["miou"].item() == pytest.approx(sum(iou) / 3)  # background included
    assert out["f1_fg"].item() == pytest.approx((f1[1] + f1[2]) / 2)  # background left out
    assert out["pixel_acc"].item() == pytest.approx(4 / 6)


def test_pixel_accuracy_is_micro_not_mean_recall():
    target = torch.tensor([[[0, 0, 0, 0, 0, 0, 0, 1]]])
    pred = torch.tensor([[[0, 0, 0, 0, 0, 0, 0, 0]]])
    metric = SegmentationMetrics(["background", "a"])
    metric.update(logits_for(pred, 2), target)
    assert metric.compute()["pixel_acc"].item() == pytest.approx(7 / 8)  # mean recall would be 0.5


def test_rmse_of_uniform_probabilities():
    target = torch.randint(0, 3, (2, 4, 5))
    metric = SegmentationMetrics(NAMES)
    metric.update(torch.zeros(2, 3, 4, 5), target)  # softmax = 1/3 everywhere
    # per pixel: (1 - 1/3)^2 + 2 * (1/3)^2 = 2/3, summed over the classes
    assert metric.compute()["rmse"].item() == pytest.approx(math.sqrt(2 / 3))


def test_rmse_matches_the_one_hot_definition():
    torch.manual_seed(0)
    logits, target = torch.randn(3, 3, 6, 7), torch.randint(0, 3, (3, 6, 7))
    metric = SegmentationMetrics(NAMES)
    metric.update(logits, target)
    one_hot = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    expected = (logits.softmax(1) - one_hot).square().sum(1).mean().sqrt()
    assert metric.compute()["rmse"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_rmse_does_not_change_when_a_class_nobody_predicts_is_added():
    torch.manual_seed(1)
    probs, target = torch.rand(2, 3, 5, 6).softmax(1), torch.randint(0, 3, (2, 5, 6))
    small, large = SegmentationMetrics(NAMES), SegmentationMetrics([*NAMES, "unused"])
    small.update(probs.log(), target)
    large.update(torch.cat([probs, torch.zeros(2, 1, 5, 6)], 1).clamp_min(1e-30).log(), target)
    assert large.compute()["rmse"].item() == pytest.approx(small.compute()["rmse"].item(), rel=1e-5)


def test_pooled_over_the_split_not_averaged_per_image():
    metric = SegmentationMetrics(["background", "a"])
    # Image 1: a tiny part, missed. Image 2: a large part, found.
    t1, p1 = torch.tensor([[[0, 0, 0, 1]]]), torch.tensor([[[0, 0, 0, 0]]])
    t2, p2 = torch.tensor([[[1, 1, 1, 1]]]), torch.tensor([[[1, 1, 1, 1]]])
    metric.update(logits_for(p1, 2), t1)
    metric.update(logits_for(p2, 2), t2)
    pooled = metric.compute()["iou/a"].item()
    assert pooled == pytest.approx(4 / 5)  # per-image mean would be (0 + 1) / 2
    both = SegmentationMetrics(["background", "a"])
    both.update(logits_for(torch.cat([p1, p2]), 2), torch.cat([t1, t2]))
    assert both.compute()["iou/a"].item() == pytest.approx(pooled)


def test_absent_class_is_nan_and_left_out_of_the_means():
    target = torch.tensor([[[0, 0, 1, 1]]])
    metric = SegmentationMetrics(NAMES)
    metric.update(logits_for(target), target)
    out = metric.compute()
    assert math.isnan(out["iou/b"].item()) and math.isnan(out["f1/b"].item())
    assert out["miou"].item() == 1.0 and out["f1_fg"].item() == 1.0


def test_a_class_the_truth_lacks_is_left_out_even_when_a_model_predicts_it():
    """One class set for every model: predicting an absent class costs precision where the pixels came from."""
    target, pred = torch.tensor([[[0, 0, 1, 1]]]), torch.tensor([[[0, 2, 1, 1]]])
    metric = SegmentationMetrics(NAMES)
    metric.update(logits_for(pred), target)
    out = metric.compute()
    assert math.isnan(out["f1/b"].item())
    assert out["f1_fg"].item() == pytest.approx(1.0) and out["miou"].item() == pytest.approx((1 / 2 + 1) / 2)


@pytest.mark.parametrize("classes", [3, 19, 300])
def test_top_class_is_max_indices_first_on_ties(classes):
    probs = torch.randn(2, classes, 5, 7).softmax(1)
    probs[0, classes - 1] = probs[0].amax(0)  # ties: the first index wins, as max's does
    probs[1, :, 0] = probs[1, 0, 0]  # a whole row of pixels tied across every class
    for dim in (1, 2):
        assert torch.equal(top_class(probs, dim), probs.max(dim).indices)
    assert torch.equal(top_class(probs[0], 0), probs[0].max(0).indices)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not match"):
        SegmentationMetrics(NAMES).update(torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_half_precision_logits_score_like_float32():
    """Under bf16-mixed training the validation logits are bf16 (this failed on a GPU before the fix)."""
    logits = torch.randn(2, 3, 5, 7).bfloat16()
    target = torch.randint(0, 3, (2, 5, 7))
    low, full = SegmentationMetrics(NAMES), SegmentationMetrics(NAMES)
    low.update(logits, target)
    full.update(logits.float(), target)
    for key, value in full.compute().items():
        assert torch.equal(low.compute()[key], value), key


def test_chosen_pixels_only():
    target = torch.tensor([[[0, 1], [2, 2]]])
    pred = torch.tensor([[[1, 1], [2, 0]]])
    where = torch.tensor([[[False, True], [True, False]]])
    metric = SegmentationMetrics(NAMES)
    metric.update(logits_for(pred), target, where)
    assert metric.confmat.tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert metric.pixels.item() == 2


def test_per_image_results_add_up_to_the_pooled_ones_in_index_order():
    torch.manual_seed(0)
    logits, target = torch.randn(5, 3, 4, 6), torch.randint(0, 3, (5, 4, 6))
    where = torch.rand(5, 4, 6) > 0.3
    metric = SegmentationMetrics(NAMES, per_image=True)
    metric.update(logits[3:], target[3:], where[3:], index=torch.tensor([3, 4]))  # out of order, as shards arrive
    metric.update(logits[:3], target[:3], where[:3], index=torch.tensor([0, 1, 2]))
    pooled = metric.compute()
    images = metric.per_image_results()
    assert images["index"].tolist() == [0, 1, 2, 3, 4]
    assert torch.equal(images["confusion"].sum(0), pooled["confusion"])
    assert images["pixels"].tolist() == where.sum((1, 2)).tolist()
    for i in range(5):  # each image scored alone gives its own row
        alone = SegmentationMetrics(NAMES)
        alone.update(logits[i : i + 1], target[i : i + 1], where[i : i + 1])
        assert torch.equal(alone.confmat, images["confusion"][i])
        assert images["squared_error"][i].item() == pytest.approx(alone.squared_error.item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs the images' index"):
        metric.update(logits, target)
