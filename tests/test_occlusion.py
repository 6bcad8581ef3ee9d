"""Occluders: seeded, of every kind, hiding the asked fraction of the face, labelled background underneath."""

import albumentations as A
import cv2
import numpy as np
import pytest

from facseg.data.labels import BACKGROUND
from facseg.data.occlusion import KINDS, FixedOcclusion, draw_occluder, face_mask
from facseg.data.transforms import RandomOccluder


@pytest.fixture(scope="module")
def labels(tiny_root):
    paths = sorted((tiny_root / "test" / "labels").glob("*.png"))
    return [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in paths]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("coverage", [0.05, 0.2, 0.5])
def test_each_kind_hides_the_asked_fraction_of_the_face(labels, kind, coverage):
    for i, label in enumerate(labels):
        occlusion = draw_occluder(label, coverage, np.random.default_rng(i), kinds=[kind])
        face = face_mask(label)
        hidden = np.count_nonzero(occlusion.mask & face) / face.sum()
        assert np.count_nonzero(occlusion.mask & face) == round(coverage * face.sum()), (kind, i)  # to the pixel
        assert occlusion.coverage == pytest.approx(hidden)
        assert occlusion.kind == kind


def test_the_same_seed_and_image_give_the_same_occluder(labels):
    fixed = FixedOcclusion(coverage=0.3, seed=7)
    first, again = fixed(2, labels[2]), fixed(2, labels[2])
    np.testing.assert_array_equal(first.mask, again.mask)
    np.testing.assert_array_equal(first.fill, again.fill)
    assert not np.array_equal(first.mask, fixed(3, labels[2]).mask)  # another image, another occluder
    assert not np.array_equal(first.mask, FixedOcclusion(coverage=0.3, seed=8)(2, labels[2]).mask)


@pytest.mark.parametrize("textured", [0.0, 1.0])
def test_an_occluder_painted_on_its_own_pixels_is_the_whole_fill_there(labels, textured):
    """A test condition's occluder is painted on its mask's pixels only (noise drawn up to the last of them, stripes
    worked out there): the same numbers as the whole fill's, painted when and as often as asked."""
    fills = set()
    for i in range(12):  # solid fills; or noise and stripes, about half each
        label = labels[i % len(labels)]
        occlusion = draw_occluder(label, 0.3, np.random.default_rng(i), textured=textured, paint_later=True)
        whole = occlusion.fill
        assert whole.shape == (*label.shape, 3)
        np.testing.assert_array_equal(occlusion.paint(occlusion.mask), whole[occlusion.mask])
        np.testing.assert_array_equal(occlusion.fill, whole)  # again: the same
        fills.add(
            "solid" if np.ptp(whole[..., 0]) == 0 else "stripes" if len(np.unique(whole[..., 0])) == 2 else "noise"
        )
    assert fills == ({"solid"} if textured == 0 else {"noise", "stripes"})


def test_truth_under_the_occluder_is_background_and_the_rest_is_untouched(labels):
    label = labels[0]
    image = np.full((*label.shape, 3), 77, np.uint8)
    occlusion = FixedOcclusion(coverage=0.25, textured=0.0)(0, label)
    occluded_image, occluded_label = occlusion.apply(image, label)
    assert (occluded_label[occlusion.mask] == BACKGROUND).all()
    np.testing.assert_array_equal(occluded_label[~occlusion.mask], label[~occlusion.mask])
    np.testing.assert_array_equal(occluded_image[~occlusion.mask], image[~occlusion.mask])
    assert (occluded_image[occlusion.mask] != 77).any(-1).mean() > 0.9  # solid fills of a random colour
    assert image.max() == 77 and label is labels[0]  # the inputs are not modified


def test_every_kind_turns_up_and_bad_settings_are_named(labels):
    seen = {FixedOcclusion()(i, labels[i % len(labels)]).kind for i in range(40)}
    assert seen == set(KINDS)
    with pytest.raises(ValueError, match=r"kinds \['scarf'\]: expected some of ellipse"):
        FixedOcclusion(kinds=("scarf",))
    with pytest.raises(ValueError, match="coverage=1.5"):
        draw_occluder(labels[0], 1.5, np.random.default_rng(0))


def test_training_occluder_follows_the_pipeline_seed(labels):
    label = labels[0]
    image = np.full((*label.shape, 3), 200, np.uint8)

    def occlude(seed):
        return A.Compose([RandomOccluder(coverage=(0.2, 0.2), p=1.0)], seed=seed)(image=image, mask=label)

    out = occlude(3)
    hidden = (out["image"] != 200).any(-1) & face_mask(label)
    assert hidden.sum() == pytest.approx(0.2 * face_mask(label).sum(), rel=0.1)
    assert (out["mask"][out["mask"] != label] == BACKGROUND).all()
    np.testing.assert_array_equal(occlude(3)["mask"], out["mask"])
    assert not np.array_equal(occlude(4)["mask"], out["mask"])


def test_zero_coverage_hides_nothing(labels):
    assert not FixedOcclusion(coverage=0.0)(0, labels[0]).mask.any()
