import albumentations as A
import cv2
import numpy as np
import pytest
import torch

from facseg.data.formats import read_landmarks
from facseg.data.labels import LabelMap
from facseg.data.landmarks import landmark_flip_permutation
from facseg.data.transforms import HorizontalFlipSwap, build_pipeline
from tests.helpers import REAL_SAMPLES

CLASS_NAMES = LabelMap.named("lapa").names


def centroid_x(label, name):
    return np.nonzero(label == CLASS_NAMES.index(name))[1].mean()


def test_mirror_swaps_exactly_the_left_right_pairs():
    assert LabelMap.named("lapa").mirror().tolist() == [0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10]
    celebamask = LabelMap.named("celebamask")  # l_eye/r_eye, l_brow/r_brow, l_ear/r_ear: 4<->5, 6<->7, 8<->9
    assert celebamask.mirror().tolist() == [0, 1, 2, 3, 5, 4, 7, 6, 9, 8, *range(10, 19)]


def test_flip_moves_pixels_and_swaps_left_right_ids():
    label = np.zeros((8, 10), np.uint8)
    label[2, 1] = 2  # left eyebrow, image left
    label[2, 8] = 3  # right eyebrow, image right
    label[4, 2] = 4  # left eye
    label[6, 5] = 6  # nose: keeps its id
    image = np.zeros((8, 10, 3), np.uint8)
    out = HorizontalFlipSwap(p=1.0)(image=image, mask=label)["mask"]
    expected = np.zeros_like(label)
    expected[2, 8] = 3  # the left brow's pixels now lie on the right: they are the right brow
    expected[2, 1] = 2
    expected[4, 7] = 5
    expected[6, 4] = 6
    np.testing.assert_array_equal(out, expected)


@pytest.mark.skipif(not (REAL_SAMPLES / "lapa-labelled").is_dir(), reason="../shared/real-samples is absent")
def test_flip_keeps_left_on_the_left_on_a_real_lapa_label():
    label = cv2.imread(str(REAL_SAMPLES / "lapa-labelled/test/labels/lapa_sample.png"), cv2.IMREAD_UNCHANGED)
    image = np.zeros((*label.shape, 3), np.uint8)
    flipped = HorizontalFlipSwap(p=1.0)(image=image, mask=label)["mask"]
    for part in ("eyebrow", "eye"):
        assert centroid_x(label, f"left_{part}") < centroid_x(label, f"right_{part}")
        assert centroid_x(flipped, f"left_{part}") < centroid_x(flipped, f"right_{part}")


def test_pipeline_normalises_and_keeps_label_ids():
    label = np.zeros((64, 64), np.uint8)
    label[20:40, 10:30] = 4
    image = np.full((64, 64, 3), 128, np.uint8)
    out = build_pipeline([HorizontalFlipSwap(p=1.0)])(image=image, mask=label)
    assert tuple(out["image"].shape) == (3, 64, 64) and out["image"].dtype == torch.float32
    assert set(np.unique(out["mask"].numpy())) == {0, 5}  # flipped: the left eye became the right eye


def test_landmark_flip_permutation_is_an_involution_that_swaps_sides():
    perm = landmark_flip_permutation()
    np.testing.assert_array_equal(perm[perm], np.arange(106))
    assert perm[74] == 83 and perm[104] == 105 and perm[54] == 54 and perm[84] == 90 and perm[0] == 32


@pytest.mark.skipif(not (REAL_SAMPLES / "lapa-landmarks").is_dir(), reason="../shared/real-samples is absent")
def test_flip_renumbers_real_landmarks_so_left_stays_left():
    folder = REAL_SAMPLES / "lapa-landmarks" / "test"
    for image_path in sorted((folder / "images").glob("*.jpg")):
        points = read_landmarks(folder / "landmarks" / f"{image_path.stem}.txt")
        image = cv2.imread(str(image_path))
        flip = A.Compose([HorizontalFlipSwap(p=1.0)], keypoint_params=A.KeypointParams("xy", remove_invisible=False))
        flipped = np.asarray(flip(image=image, keypoints=points)["keypoints"])
        for before, after in ((points, flipped),):
            for a, b in ((74, 83), (0, 32), (33, 46), (84, 90), (57, 63)):
                assert before[a, 0] < before[b, 0] and after[a, 0] < after[b, 0], (image_path.name, a, b)
            assert np.all(np.diff(after[33:38, 0]) > 0) and np.all(
                np.diff(after[42:47, 0]) > 0
            )  # brows run left->right
        np.testing.assert_allclose(flipped[74], [image.shape[1] - points[83, 0], points[83, 1]], atol=1)
