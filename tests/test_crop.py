import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facseg.data.crop import alignment_matrix, letterbox_matrix, similarity_matrix, template_points, warp_to_crop
from facseg.data.formats import read_landmarks
from facseg.data.labels import BACKGROUND, IGNORE, LabelMap
from facseg.data.landmarks import ALIGNMENT_POINTS
from facseg.data.synthetic import render_face
from facseg.data.warp import PhotoGrid, warp_to_photos
from facseg.metrics.region import Prediction, SegmentationMetrics
from facseg.scoring import probabilities
from tests.helpers import REAL_SAMPLES

CLASS_NAMES = LabelMap.named("lapa").names


def apply(matrix, points):
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_similarity_is_recovered_exactly():
    rng = np.random.default_rng(0)
    angle, scale, shift = 0.4, 1.7, np.array([12.0, -5.0])
    truth = np.array(
        [
            [scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
            [scale * np.sin(angle), scale * np.cos(angle), shift[1]],
        ]
    )
    src = rng.uniform(0, 100, (5, 2))
    np.testing.assert_allclose(similarity_matrix(src, apply(truth, src)), truth, atol=1e-9)


def test_synthetic_faces_land_on_the_template():
    for i in range(5):
        _, label, landmarks = render_face(np.random.default_rng([2, i]), 600, 500)
        matrix = alignment_matrix(landmarks, 256, 0.6)
        residual = np.linalg.norm(apply(matrix, landmarks[list(ALIGNMENT_POINTS)]) - template_points(256, 0.6), axis=1)
        assert residual.max() < 0.05 * 256  # the five points fit a similarity closely


def test_letterbox_fits_the_whole_photo_centred():
    matrix = letterbox_matrix(300, 600, 128)
    corners = apply(matrix, np.array([[-0.5, -0.5], [599.5, 299.5]]))
    np.testing.assert_allclose(corners, [[-0.5, 31.5], [127.5, 95.5]])  # the crop's pixel edges


@pytest.mark.parametrize(("image_size", "bound"), [(128, 0.95), (512, 0.97)])
def test_label_round_trip_through_the_crop(image_size, bound):
    """Warp a label to the crop and its one-hot logits back: how much of the photo's labelling survives."""
    agreements = []
    for i in range(4):
        _, label, landmarks = render_face(np.random.default_rng([5, i]), 900, 700)
        matrix = alignment_matrix(landmarks, image_size, 0.6)
        _, crop_label = warp_to_crop(np.zeros((*label.shape, 3), np.uint8), label, matrix, image_size)
        logits = F.one_hot(torch.from_numpy(crop_label).long(), len(CLASS_NAMES)).permute(2, 0, 1).float()
        back = warp_to_photos(logits[None], torch.from_numpy(matrix)[None], [label.shape])[0][0].argmax(0).numpy()
        agreements.append((back == label).mean())
    print(f"\nround trip at {image_size} px: pixel agreement {np.round(agreements, 4).tolist()}")
    assert min(agreements) >= bound


def test_pixels_outside_the_crop_are_background():
    logits = torch.zeros(11, 32, 32)
    logits[10] = 5.0  # hair everywhere in the crop
    matrix = np.array([[0.5, 0, 16], [0, 0.5, 0]])  # the photo's right half falls outside the crop
    out = warp_to_photos(logits[None], torch.tensor(matrix)[None], [(64, 64)])[0][0].argmax(0)
    assert (out[:, :30] == 10).all() and (out[:, 34:] == 0).all()


def per_photo_warp(logits: torch.Tensor, matrix: np.ndarray, height: int, width: int) -> torch.Tensor:
    """The warp before the batched one (facseg 0.1, logits_to_original): one photo, a float64 grid on the CPU."""
    size = logits.shape[-1]
    m = torch.as_tensor(matrix, dtype=torch.float64)
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    cx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    cy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    grid = torch.stack([(2 * cx + 1) / size - 1, (2 * cy + 1) / size - 1], -1).float()
    out = F.grid_sample(logits[None].float(), grid[None], mode="bilinear", align_corners=False)[0]
    background = torch.full((logits.shape[0],), -20.0)
    background[BACKGROUND] = 20.0
    out[:, (grid.abs() > 1).any(-1)] = background[:, None]
    return out


def test_batched_warp_agrees_with_the_per_photo_warp():
    """Photos of different sizes and poses in one batch: each gets what the per-photo warp gave it."""
    torch.manual_seed(0)
    sizes = [(900, 700), (333, 517), (256, 256), (1000, 1000)]
    matrices, logits = [], torch.randn(len(sizes), len(CLASS_NAMES), 128, 128) * 5
    for i, (height, width) in enumerate(sizes):
        _, _, landmarks = render_face(np.random.default_rng([7, i]), height, width)
        matrices.append(alignment_matrix(landmarks, 128, 0.6))
    warped, valid, covered = warp_to_photos(logits, torch.from_numpy(np.stack(matrices)), sizes)
    assert (covered <= valid).all() and 0 < covered.sum() < valid.sum()  # the crop covers part of each photo
    assert warped.shape == (4, len(CLASS_NAMES), 1000, 1000)
    differences, agreements = [], []
    for i, (height, width) in enumerate(sizes):
        assert valid[i].sum() == height * width and valid[i, :height, :width].all()
        reference = per_photo_warp(logits[i], matrices[i], height, width)
        ours = warped[i, :, :height, :width]
        differences.append((ours - reference).abs().max().item())
        agreements.append((ours.argmax(0) == reference.argmax(0)).float().mean().item())
    print(f"\nbatched vs per-photo warp: max |difference| {max(differences):.3g}, label agreement {min(agreements)}")
    assert max(differences) <= 1e-5 and min(agreements) == 1.0


@pytest.mark.skipif(not (REAL_SAMPLES / "lapa-landmarks").is_dir(), reason="../shared/real-samples is absent")
def test_real_lapa_landmarks_align():
    folder = REAL_SAMPLES / "lapa-landmarks" / "test"
    for image_path in sorted((folder / "images").glob("*.jpg")):
        landmarks = read_landmarks(folder / "landmarks" / f"{image_path.stem}.txt")
        matrix = alignment_matrix(landmarks, 512, 0.6)
        aligned = apply(matrix, landmarks[list(ALIGNMENT_POINTS)])
        residual = np.linalg.norm(aligned - template_points(512, 0.6), axis=1)
        # A turned head moves its nose tip off the template: a few percent of the crop, no more.
        assert residual.mean() < 0.04 * 512 and residual.max() < 0.07 * 512, f"{image_path.name}: {residual}"
        assert aligned[0, 0] < aligned[1, 0] and aligned[3, 0] < aligned[4, 0]  # left stays left


@pytest.mark.parametrize("band", [1, 7, 1 << 30])
def test_banded_photo_predictions_are_the_whole_tensors_to_the_last_bit(monkeypatch, band):
    """A single net and a weighted ensemble scored band by band on photos of several sizes and poses, with IGNORE
    labels, against warping, softmax and mean on whole tensors: CPU kernels may round a band's last bit otherwise
    (their vector tails), so probabilities agree to a float's rounding, the arg-max wherever two classes are not tied
    to within it, and the metrics to that."""
    monkeypatch.setattr(probabilities, "BAND", band * len(CLASS_NAMES) * 3 * 300)  # `band` rows of 3 photos
    torch.manual_seed(0)
    sizes = [(300, 240), (173, 300), (256, 256)]
    matrices = []
    for i, (height, width) in enumerate(sizes):
        _, _, landmarks = render_face(np.random.default_rng([3, i]), height, width)
        matrices.append(alignment_matrix(landmarks, 64, 0.6))
    matrices = torch.from_numpy(np.stack(matrices))
    members = torch.randn(2, len(sizes), len(CLASS_NAMES), 64, 64) * 4
    grid = PhotoGrid.of(matrices, sizes, 64, members.device)
    target = torch.randint(0, len(CLASS_NAMES), grid.valid.shape)
    target[:, :5] = IGNORE
    scorings = [((0,), (1.0,)), ((1, 0), (0.3, 0.7))]
    banded = probabilities.photo_predictions(members, grid, scorings, [target])
    whole = torch.stack([warp_to_photos(m, matrices, sizes)[0].softmax(1) for m in members])
    c = len(CLASS_NAMES)
    for (chosen, weights), ours in zip(scorings, banded):
        reference = Prediction.of_probs(probabilities.mean(whole, chosen, weights))
        top2 = reference.probs.topk(2, 1).values
        tied = (top2[:, 0] - top2[:, 1]) < 1e-6
        assert ((ours.pred != reference.pred) <= tied).all()
        assert torch.allclose(ours.square_sum, reference.square_sum, rtol=0, atol=1e-6)
        assert torch.allclose(ours.against(target, c)[1], reference.against(target, c)[1], rtol=0, atol=4e-6)
        values = []
        for scored in (ours, reference):
            metric = SegmentationMetrics(CLASS_NAMES, per_image=True)
            metric.update(scored, target, grid.covered, torch.arange(len(sizes)))
            values.append(metric.per_image_results())
        assert (values[0]["confusion"] - values[1]["confusion"]).abs().sum() <= 2 * tied.sum()
        assert torch.allclose(values[0]["squared_error"], values[1]["squared_error"], rtol=1e-6, atol=0)
