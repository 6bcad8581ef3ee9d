import json

import cv2
import numpy as np
import pytest

from facseg.data.labels import LabelMap
from facseg.data.synthetic import MARKER, SPLITS, SyntheticSpec, ensure_synthetic, generate, main
from tests.helpers import compose_train

CLASS_NAMES = LabelMap.named("lapa").names
NUM_CLASSES = len(CLASS_NAMES)


def read_landmarks(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "106"
    points = np.array([[float(v) for v in line.split()] for line in lines[1:]])
    assert points.shape == (106, 2)
    return points


def test_layout_and_formats(tiny_root):
    for split, count in SyntheticSpec(train=8, val=4, test=4).counts().items():
        images = sorted((tiny_root / split / "images").glob("*.jpg"))
        assert len(images) == count
        for image_path in images:
            image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
            assert image.shape == (96, 96, 3) and image.dtype == np.uint8
            label = cv2.imread(str(tiny_root / split / "labels" / f"{image_path.stem}.png"), cv2.IMREAD_UNCHANGED)
            assert label.shape == (96, 96) and label.dtype == np.uint8
            assert label.max() < NUM_CLASSES
            read_landmarks(tiny_root / split / "landmarks" / f"{image_path.stem}.txt")
    assert json.loads((tiny_root / MARKER).read_text())["train"] == 8


def test_faces_have_every_part_where_landmarks_say(tmp_path):
    root = tmp_path / "set"
    generate(root, SyntheticSpec(train=12, val=0, test=0, size=256, seed=3))
    present = np.zeros(NUM_CLASSES, int)
    for label_path in sorted((root / "train" / "labels").glob("*.png")):
        label = cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED)
        points = read_landmarks(root / "train" / "landmarks" / f"{label_path.stem}.txt")
        present += np.bincount(label.ravel(), minlength=NUM_CLASSES) > 0

        def label_at(i, points=points, label=label):
            x, y = np.round(points[i]).astype(int)
            return CLASS_NAMES[label[y, x]]

        # The 5 alignment points of the literature sit on their parts; 104/105 repeat the eye centres.
        assert label_at(74) == "left_eye" and label_at(83) == "right_eye"
        assert label_at(54) == "nose"
        np.testing.assert_allclose(points[104], points[74])
        np.testing.assert_allclose(points[105], points[83])
        for corner in (84, 90):
            x, y = np.round(points[corner]).astype(int)
            assert {CLASS_NAMES[v] for v in label[y - 2 : y + 3, x - 2 : x + 3].ravel()} & {"upper_lip", "lower_lip"}
        # "left" is the image's left: the left eye is left of the right eye, in pixels and in landmarks.
        left_x = np.nonzero(label == CLASS_NAMES.index("left_eye"))[1].mean()
        right_x = np.nonzero(label == CLASS_NAMES.index("right_eye"))[1].mean()
        assert left_x < right_x and points[74, 0] < points[83, 0]
        assert points[0, 0] < points[32, 0]  # the contour runs from the image's left to its right
    assert (present > 0).all(), f"classes never drawn: {[CLASS_NAMES[i] for i in np.flatnonzero(present == 0)]}"
    assert present[CLASS_NAMES.index("inner_mouth")] >= 4  # open mouths are common


def test_same_seed_same_bytes_other_seed_other_faces(tmp_path):
    spec = SyntheticSpec(train=2, val=1, test=1, size=64, seed=7)
    generate(tmp_path / "a", spec)
    generate(tmp_path / "b", spec)
    generate(tmp_path / "c", SyntheticSpec(train=2, val=1, test=1, size=64, seed=8))
    a, b, c = ((tmp_path / d / "train" / "images" / "train_00000.jpg").read_bytes() for d in "abc")
    assert a == b and a != c


def test_generate_refuses_existing_and_ensure_checks_marker(tmp_path):
    spec = SyntheticSpec(train=1, val=1, test=1, size=64)
    root = ensure_synthetic(tmp_path / "s", spec)
    assert sorted(p.name for p in root.iterdir()) == sorted([MARKER, *SPLITS])
    assert ensure_synthetic(root, spec) == root  # reused as it is
    with pytest.raises(FileExistsError):
        generate(root, spec)
    with pytest.raises(ValueError, match="holds a synthetic set made with .*, not "):
        ensure_synthetic(root, SyntheticSpec(train=2, val=1, test=1, size=64))
    assert [p.name for p in tmp_path.iterdir()] == ["s"]  # no temporary folder left behind
    real = tmp_path / "LaPa"
    (real / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="a real dataset.*paths.lapa"):
        ensure_synthetic(real, spec)
    assert [p.name for p in real.iterdir()] == ["train"]  # nothing written into it


def test_a_real_datasets_path_set_for_every_run_never_reaches_the_synthetic_default(tmp_path):
    """conf/local/default.yaml is merged into every run: its dataset paths go to data=lapa, not to data=synthetic."""
    local = ["paths.lapa=/datasets/LaPa"]
    assert compose_train(local, tmp_path).data.root.endswith("_px256_seed0")  # its own generated set
    assert compose_train([*local, "data=lapa"], tmp_path).data.root == "/datasets/LaPa"


@pytest.mark.parametrize("data", ["lapa", "celebamask", "folder"])
def test_a_real_dataset_is_cropped_once_into_the_cache_by_default_and_the_synthetic_default_is_not(tmp_path, data):
    cfg = compose_train([f"data={data}", "paths.data_dir=/scratch/data"], tmp_path)
    assert cfg.data.cache_dir == "/scratch/data/crops"
    assert compose_train([f"data={data}", "data.cache_dir=null"], tmp_path).data.cache_dir is None
    assert compose_train([], tmp_path).data.cache_dir is None


def test_cli(tmp_path):
    main(["--out", str(tmp_path / "cli"), "--train", "2", "--val", "1", "--test", "1", "--size", "64", "--seed", "5"])
    assert len(list((tmp_path / "cli" / "val" / "labels").glob("*.png"))) == 1
    assert json.loads((tmp_path / "cli" / MARKER).read_text())["seed"] == 5
