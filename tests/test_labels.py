"""Class sets and the mappings between them, on small hand-made label maps (the real-mask checks: test_celebamask)."""

import numpy as np
import pytest
import torch

from facseg.data.labels import IGNORE, LabelMap, LabelMapping
from facseg.metrics.region import SegmentationMetrics

LAPA = LabelMap.named("lapa")


def tiny_map(**changes) -> LabelMap:
    spec = {
        "name": "tiny",
        "names": ["background", "skin", "l_eye", "r_eye", "glasses"],
        "colours": [[0, 0, 0]] * 5,
        "flip_pairs": [["l_eye", "r_eye"]],
        "face": ["skin", "l_eye", "r_eye"],
        "mappings": {
            "lapa": {
                "classes": {"background": "background", "skin": "skin"},
                "by_position": [["l_eye", "r_eye", "left_eye", "right_eye"]],
                "ignore": ["glasses"],
            }
        },
    }
    return LabelMap.from_config({**spec, **changes})


def test_a_class_set_names_its_mistakes():
    with pytest.raises(ValueError, match=r"flip_pairs names unknown classes \['eye'\]"):
        tiny_map(flip_pairs=[["l_eye", "eye"]])
    with pytest.raises(ValueError, match="names must start with 'background'"):
        tiny_map(names=["skin", "background", "l_eye", "r_eye", "glasses"])
    with pytest.raises(ValueError, match="4 colours for 5 classes"):
        tiny_map(colours=[[0, 0, 0]] * 4)
    assert tiny_map().mean_f1 == ("skin", "l_eye", "r_eye", "glasses")  # default: all but the background


def test_an_incomplete_mapping_is_refused_with_what_is_missing():
    spec = {"classes": {"background": "background"}, "by_position": [["l_eye", "r_eye", "left_eye", "eye"]]}
    with pytest.raises(ValueError, match=r"unmapped \['skin', 'glasses'\].*unknown target classes \['eye'\]"):
        LabelMapping(tiny_map(mappings={"lapa": spec}), LAPA)


def test_sided_classes_go_by_position_and_alone_by_the_side_of_the_face():
    mapping = LabelMapping(tiny_map(), LAPA)
    left, right, skin = LAPA.ids(["left_eye", "right_eye", "skin"])
    label = np.zeros((4, 10), np.uint8)
    label[1:3, 2:8] = 1
    label[1, 2], label[1, 7] = 2, 3  # l_eye on the image's left: left_eye
    assert mapping(label)[1, 2] == left and mapping(label)[1, 7] == right
    label[1, 2], label[1, 7] = 3, 2  # the other way round (the subject's left): still by position
    assert mapping(label)[1, 2] == left and mapping(label)[1, 7] == right
    label[1, 2] = 1  # one eye alone, right of the face's centre
    assert mapping(label)[1, 7] == right and mapping(label)[2, 4] == skin
    label[2, 4] = 4
    assert mapping(label)[2, 4] == IGNORE


def test_ignored_pixels_count_nowhere():
    """A target of IGNORE scores as if the pixel were outside `where`: confusion, squared error and pixels."""
    logits = torch.randn(2, 11, 6, 6)
    target = torch.randint(0, 11, (2, 6, 6))
    ignored = torch.rand(2, 6, 6) < 0.3
    a, b = SegmentationMetrics(LAPA, per_image=True), SegmentationMetrics(LAPA, per_image=True)
    a.update(logits, target.masked_fill(ignored, IGNORE), index=torch.arange(2))
    b.update(logits, target, where=~ignored, index=torch.arange(2))
    for key, value in a.compute().items():
        assert torch.equal(value.nan_to_num(-1), b.compute()[key].nan_to_num(-1)), key
    for key, value in a.per_image_results().items():
        assert torch.equal(value, b.per_image_results()[key]), key


def test_anatomy_rules_follow_the_flip_pairs_unless_given_and_name_a_wrong_key_or_class():
    spec = {"name": "x", "names": ["background", "a", "l", "r"], "colours": [[0, 0, 0]] * 4, "flip_pairs": [["l", "r"]]}
    plain = LabelMap.from_config(spec)
    assert plain.single() == [2, 3] and plain.sides() == [(2, 3)]  # default: the flip pairs, for both
    given = LabelMap.from_config({**spec, "anatomy": {"single": ["a"]}})
    assert given.single() == [1] and given.sides() == [(2, 3)] and LabelMap.from_config(given.to_dict()) == given
    with pytest.raises(ValueError, match=r"anatomy names unknown classes \['b'\]"):
        LabelMap.from_config({**spec, "anatomy": {"single": ["b"]}})
    with pytest.raises(ValueError, match=r"anatomy takes `single` and `sides`, found \['singel'\]"):
        LabelMap.from_config({**spec, "anatomy": {"singel": ["a"]}})
