"""data=folder: a dataset and class set of one's own (images/, masks/, {train,val,test}.txt, classes.yaml), checked
by `facseg check` and trained on like the others."""

import json
import shutil

import cv2
import numpy as np
import pytest
import yaml

from facseg.data.check import main as check_main
from facseg.data.labels import LabelMap
from facseg.training.job import train
from tests.helpers import TINY, compose_train

# LaPa's 11 classes merged into 4: background, skin, the features (brows, eyes, nose, lips, mouth), hair.
MERGE = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3], np.uint8)
CLASSES = {"names": ["background", "skin", "features", "hair"], "mean_f1": ["skin", "features", "hair"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_root):
    """The tiny synthetic set rewritten as a folder of one's own, with PNG photos and a 4-class set."""
    root = tmp_path_factory.mktemp("mine")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for split in ("train", "val", "test"):
        ids = []
        for image in sorted((tiny_root / split / "images").glob("*.jpg")):
            ids.append(f"{split}-{image.stem}")
            cv2.imwrite(str(root / "images" / f"{ids[-1]}.png"), cv2.imread(str(image)))
            label = cv2.imread(str(tiny_root / split / "labels" / f"{image.stem}.png"), cv2.IMREAD_UNCHANGED)
            cv2.imwrite(str(root / "masks" / f"{ids[-1]}.png"), MERGE[label])
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.yaml").write_text(yaml.safe_dump(CLASSES))
    return root


def test_facseg_check_recognises_a_folder_and_reads_its_class_set(folder, capsys):
    assert check_main([str(folder), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "folder layout (recognised)" in out and "features" in out and "usable" in out


def test_a_folder_dataset_trains_and_is_scored_in_its_own_classes(folder, tmp_path):
    best = train(compose_train(["data=folder", f"data.root={folder}", *TINY, "logger=csv"], tmp_path))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["labels"]["names"] == CLASSES["names"] and metrics["val/f1_fg"] == pytest.approx(best)
    assert {"test/f1/features", "occluded/f1_fg"} <= set(metrics)
    assert not any(k.startswith("occluded_target/") for k in metrics)  # no eyes or mouth named: skipped


def test_a_broken_class_set_names_its_file(folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    (broken / "classes.yaml").write_text(yaml.safe_dump({"names": ["skin", "background"]}))
    with pytest.raises(ValueError, match=r"broken/classes.yaml: .*must start with 'background'"):
        LabelMap.of_folder(broken)
    (broken / "classes.yaml").unlink()
    with pytest.raises(FileNotFoundError, match="classes.yaml is missing: data=folder reads its class set there"):
        LabelMap.of_folder(broken)


def test_configs_of_ones_own_outside_the_package_join_the_shipped_ones(tmp_path, folder):
    """docs/data.md's recipe: a data config and a net config in a folder of one's own, on Hydra's search path."""
    (tmp_path / "data").mkdir()
    (tmp_path / "model").mkdir()
    (tmp_path / "data" / "mine.yaml").write_text(f"defaults: [folder, _self_]\nname: mine\nroot: {folder}\n")
    net = "defaults: [custom, _self_]\nname: tiny\nnet: {_target_: tests.custom_net.TinyNet, width: 4}\n"
    (tmp_path / "model" / "tiny.yaml").write_text(net)
    search = f"hydra.searchpath=[file://{tmp_path}]"
    cfg = compose_train([search, "data=mine", "model=tiny"], tmp_path / "run")
    assert cfg.data.root == str(folder) and cfg.data.format == "folder" and cfg.model.net.width == 4
    assert compose_train([search, "model=unet"], tmp_path / "run").model.name == "unet"  # the shipped ones stay
