import albumentations as A
import cv2
import numpy as np
import pytest

from facseg.data.classes import CLASS_NAMES, flip_lut
from facseg.data.transforms import HorizontalFlipSwap, build_pipeline
from tests.conftest import REAL_SAMPLES


def centroid_x(label, name):
    return np.nonzero(label == CLASS_NAMES.index(name))[1].mean()


def test_flip_lut_swaps_exactly_the_left_right_pairs():
    lut = flip_lut()
    assert lut.tolist() == [0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10]


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


def test_pipeline_resizes_labels_without_inventing_classes():
    label = np.zeros((200, 200), np.uint8)
    label[50:150, 50:150] = 10
    label[90:110, 60:100] = 4
    image = np.full((200, 200, 3), 128, np.uint8)
    out = build_pipeline(64, [A.HorizontalFlip(p=0.0)])(image=image, mask=label)
    assert tuple(out["image"].shape) == (3, 64, 64)
    assert set(np.unique(out["mask"].numpy())) == {0, 4, 10}  # nearest neighbour: no blended ids
