"""The occluded test conditions: severities to the pixel, targeted and real occluders, realignment, and metrics that
separate what an occluder hides from what it costs on the pixels it leaves visible."""

import pickle

import cv2
import numpy as np
import pytest
import pytorch_lightning as pl

from facseg.data.conditions import Condition, build_conditions, realigned_matrix
from facseg.data.crop import CropSettings, crop_matrix
from facseg.data.datamodule import FaceDataModule
from facseg.data.detect import FaceFinder
from facseg.data.labels import BACKGROUND, LabelMap
from facseg.data.layouts import open_layout
from facseg.data.occlusion import FixedOcclusion, Occlusion, face_mask
from facseg.data.real_occluders import RealOccluders, RealOcclusion
from facseg.metrics.confusion import metrics
from facseg.models.module import FaceSegModule
from facseg.scoring.evaluator import TestEvaluator
from tests.helpers import CELEBAMASK_MINI

LAPA = LabelMap.named("lapa")
FACE = tuple(LAPA.ids(LAPA.face))
# Only the primary condition: each test below adds what it looks at.
PRIMARY_ONLY = {"coverage": 0.2, "severities": [], "targets": {}, "real": None, "realign": None}


@pytest.fixture(scope="module")
def test_files(tiny_root):
    return open_layout(tiny_root, "lapa", len(LAPA)).files("test")


def test_every_severity_level_hides_its_fraction_of_each_face_to_the_pixel(tiny_root):
    levels = [0.1, 0.2, 0.3, 0.5]
    spec = {**PRIMARY_ONLY, "severities": levels}
    datamodule = FaceDataModule(root=str(tiny_root), image_size=64, occluded_test=spec)
    datamodule.setup("test")
    # The level equal to the primary coverage is the primary condition itself, scored once.
    assert datamodule.test_stages == ["test", "occluded", *(f"occluded_severity/{c}" for c in (0.1, 0.3, 0.5))]
    assert datamodule.test_aliases == {"occluded_severity/0.2": "occluded"}
    for level, stage in zip([0.2, 0.1, 0.3, 0.5], datamodule.test_stages[1:]):
        for index in range(len(datamodule.splits[stage])):
            sample = datamodule.splits[stage][index]
            face = face_mask(sample["original_clean_label"].numpy(), FACE)
            hidden = np.count_nonzero(sample["original_occluder"].numpy() & face)
            assert hidden == round(level * face.sum()), (stage, index)
            # The truth under the occluder is background; the clean label says what it hides.
            assert (sample["original_label"][sample["original_occluder"]] == BACKGROUND).all()


@pytest.mark.parametrize(("part", "kind"), [("eyes", "bar"), ("mouth", "hand"), ("nose", "ellipse")])
def test_a_targeted_occluder_sits_on_its_part_and_hides_the_asked_fraction(test_files, part, kind):
    targeted = FixedOcclusion(coverage=0.2, kinds=(kind,), face=FACE, centre_on=tuple(LAPA.ids(LAPA.parts[part])))
    for index in range(len(test_files.names)):
        _, label = test_files.read(index)
        occlusion = targeted(index, label)
        on_part = np.isin(label, LAPA.ids(LAPA.parts[part]))
        face = face_mask(label, FACE)
        assert np.count_nonzero(occlusion.mask & face) == round(0.2 * face.sum())
        # Most of the part is hidden, far more than a random place would hide of it on average (a fifth).
        assert np.count_nonzero(occlusion.mask & on_part) > 0.5 * on_part.sum(), (part, index)


def test_realignment_moves_only_hidden_landmarks(test_files):
    settings = CropSettings(image_size=64)
    condition = Condition("occluded_realigned", FixedOcclusion(face=FACE), realign="perturbed")
    image, _ = test_files.read(0)
    landmarks = test_files.points(0)
    clean = crop_matrix(landmarks, image.shape[:2], settings)
    nothing = np.zeros(image.shape[:2], bool)
    matrix, how = realigned_matrix(condition, 0, image, nothing, landmarks, settings)
    assert how == "perturbed" and np.allclose(matrix, clean)  # a detector sees every point: the same crop
    everything = np.ones(image.shape[:2], bool)
    matrix, _ = realigned_matrix(condition, 0, image, everything, landmarks, settings)
    assert not np.allclose(matrix, clean, atol=0.05)
    again, _ = realigned_matrix(condition, 0, image, everything, landmarks, settings)
    np.testing.assert_array_equal(matrix, again)  # the same error for the same image in every run


@pytest.mark.skipif(not CELEBAMASK_MINI.is_dir(), reason=f"{CELEBAMASK_MINI} is absent: real occluders need it")
def test_real_occluders_come_from_training_photos_only_and_are_blended(tmp_path, test_files, monkeypatch):
    occluders = RealOccluders(CELEBAMASK_MINI, ("eye_g", "hat"), cache_dir=tmp_path)
    cutouts = occluders.load()
    train = set((CELEBAMASK_MINI / "train.txt").read_text().split())
    held_out = set((CELEBAMASK_MINI / "test.txt").read_text().split()) | set(
        (CELEBAMASK_MINI / "val.txt").read_text().split()
    )
    sources = {c.source for c in cutouts}
    assert sources <= train and not sources & held_out
    assert {c.kind for c in cutouts} == {"eye_g", "hat"} and all(c.mask.any() for c in cutouts)
    # Cached: another process reads the same cut-outs without cutting anything out.
    monkeypatch.setattr(RealOccluders, "build", lambda self: pytest.fail("rebuilt despite the cache"))
    again = RealOccluders(CELEBAMASK_MINI, ("eye_g", "hat"), cache_dir=tmp_path).load()
    assert [c.source for c in again] == [c.source for c in cutouts]
    np.testing.assert_array_equal(again[0].rgb, cutouts[0].rgb)
    # Streamed into the cache and read back one at a time, they are the ones cut out in memory without a cache;
    # a loader worker gets the occluders without the open file.
    monkeypatch.undo()
    held = RealOccluders(CELEBAMASK_MINI, ("eye_g", "hat")).load()
    assert isinstance(held, list) and len(held) == len(again)
    for mine, cached in zip(held, again):
        np.testing.assert_array_equal(mine.rgb, cached.rgb)
        np.testing.assert_array_equal(mine.mask, cached.mask)
        assert (mine.face_width, mine.luminance, mine.kind) == (cached.face_width, cached.luminance, cached.kind)
    assert pickle.loads(pickle.dumps(occluders)).load()[-1].source == cutouts[-1].source

    real = RealOcclusion(occluders, seed=0, face=FACE)
    image, label = test_files.read(0)
    occlusion = real(0, label, image)
    assert occlusion.mask.any() and occlusion.coverage == pytest.approx(
        np.count_nonzero(occlusion.mask & face_mask(label, FACE)) / face_mask(label, FACE).sum()
    )
    # Feathered edges: partly opaque pixels around the object; the scored mask is where it is mostly opaque.
    assert ((occlusion.alpha > 0.05) & (occlusion.alpha < 0.95)).any()
    np.testing.assert_array_equal(occlusion.mask, occlusion.alpha >= 0.5)
    # Matched brightness: the same object is darker on a darker face.
    dark = real(0, label, (image * 0.5).astype(np.uint8))
    assert dark.fill[dark.mask].mean() < occlusion.fill[occlusion.mask].mean()
    # Labelled as what it is where the class set has its class (CelebAMask-HQ), background where not (LaPa).
    own = {"eye_g": 3, "hat": 4}
    labelled = RealOcclusion(occluders, seed=0, face=FACE, label_as=tuple(own.items()))(0, label, image)
    assert (labelled.apply(image, label)[1][labelled.mask] == own[labelled.kind]).all()
    assert (occlusion.apply(image, label)[1][occlusion.mask] == BACKGROUND).all()
    celebamask = LabelMap.named("celebamask")
    spec = {"real": {"root": str(CELEBAMASK_MINI), "cache_dir": str(tmp_path)}}
    conditions, _ = build_conditions(spec, celebamask, CropSettings(), "original")
    assert dict(conditions[-1].occlusion.label_as) == {k: celebamask.names.index(k) for k in ("eye_g", "hat")}
    with pytest.raises(ValueError, match=r"real occluder classes \['scarf'\]"):
        RealOccluders(CELEBAMASK_MINI, ("scarf",))


def test_a_detector_realigns_where_the_data_has_no_landmarks(test_files):
    """YuNet finds the 5 points on the occluded photo itself (here a real face: the synthetic ones are drawn)."""
    photo = next(CELEBAMASK_MINI.glob("images/*.jpg"), None) if CELEBAMASK_MINI.is_dir() else None
    if photo is None:
        pytest.skip(f"{CELEBAMASK_MINI} is absent: the detector needs a real face")
    image = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    settings = CropSettings(image_size=64, align=False)
    condition = Condition("occluded_realigned", FixedOcclusion(face=FACE), realign="perturbed")
    finder = FaceFinder(64, 0.6, align=False)
    matrix, how = realigned_matrix(condition, 0, image, np.zeros(image.shape[:2], bool), None, settings, finder)
    assert how == "detector" and matrix.shape == (2, 3)


class Fixed:
    """An occluder given as a function of the label: what the evaluator is checked against."""

    def __init__(self, where):
        self.where = where

    def __call__(self, index, label, image=None):
        mask = self.where(label)
        fill = np.zeros((*label.shape, 3), np.float32)
        return Occlusion(
            mask=mask, paint=lambda where=None: fill if where is None else fill[where], kind="test", coverage=0.0
        )


def scored(checkpoint, tiny_root, where) -> dict[str, float]:
    """The tiny checkpoint tested with one occluded condition whose occluder is `where(label)`."""
    module = FaceSegModule.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    datamodule = FaceDataModule(root=str(tiny_root), image_size=64, batch_size=4, occluded_test=PRIMARY_ONLY)
    datamodule.conditions = [Condition("occluded", Fixed(where))]
    evaluator = TestEvaluator()
    trainer = pl.Trainer(logger=False, callbacks=[evaluator], enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in evaluator.results.items()}


def test_an_occluder_wholly_on_background_changes_no_under_occluder_metric(checkpoint, tiny_root):
    """It hides no face or hair: no pixel under it is counted (the old definition counted them all, as pixels
    "left unlabelled" that were background anyway)."""
    results = scored(
        checkpoint, tiny_root, lambda label: (label == BACKGROUND) & (np.arange(label.shape[0]) < 20)[:, None]
    )
    for key in ("pixel_acc", "hallucinated", "not_face", "hallucinated/skin"):
        assert np.isnan(results[f"occluded/inside/{key}"]), key


def test_the_clean_score_on_the_visible_pixels_is_the_clean_score_when_nothing_is_hidden(checkpoint, tiny_root):
    results = scored(checkpoint, tiny_root, lambda label: np.zeros(label.shape, bool))
    for key in ("f1_fg", "miou", "pixel_acc", "rmse"):
        assert results[f"occluded/visible_clean/{key}"] == results[f"test/{key}"], key
        assert results[f"occluded/outside/{key}"] == results[f"test/{key}"], key  # the same photo, unoccluded


def test_hidden_pixels_are_split_into_hallucinated_not_face_and_other_parts():
    """Rows: the clean truth of hidden pixels (background never: it hides nothing); columns: the prediction."""
    confusion = np.zeros((3, 3))
    confusion[1] = [6, 3, 1]  # of 10 hidden skin pixels, 3 predicted skin, 6 background, 1 another part
    confusion[2] = [0, 0, 10]  # 10 hidden hair pixels, all predicted hair
    table = metrics(confusion, [1, 2])
    assert table["hallucinated"] == pytest.approx(13 / 20) and table["not_face"] == pytest.approx(6 / 20)
    np.testing.assert_allclose(table["hallucinated_class"][1:], [0.3, 1.0])
    np.testing.assert_allclose(table["not_face_class"][1:], [0.6, 0.0])
    np.testing.assert_allclose(table["predicted_as_class"], [6 / 20, 3 / 20, 11 / 20])
