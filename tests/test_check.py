"""`python -m facseg.data.check` on LaPa-format folders with one defect of each kind."""

import shutil

import cv2
import numpy as np
import pytest

from facseg.data.check import check_dataset, main
from tests.helpers import REAL_SAMPLES


@pytest.fixture
def broken(tmp_path, tiny_root):
    root = tmp_path / "broken"
    shutil.copytree(tiny_root, root)
    train, val, test = (root / s for s in ("train", "val", "test"))
    (train / "labels" / "train_00000.png").unlink()  # image without label
    shutil.copy(train / "labels" / "train_00001.png", train / "labels" / "orphan.png")  # label without image
    cv2.imwrite(str(train / "labels" / "train_00002.png"), np.zeros((50, 60), np.uint8))  # size mismatch
    cv2.imwrite(str(train / "labels" / "train_00003.png"), np.full((96, 96), 12, np.uint8))  # value 12
    cv2.imwrite(str(train / "labels" / "train_00004.png"), np.zeros((96, 96, 3), np.uint8))  # 3 channels
    data = (val / "images" / "val_00000.jpg").read_bytes()
    (val / "images" / "val_00000.jpg").write_bytes(data[: len(data) // 2])  # truncated JPEG
    (val / "images" / "val_00001.jpg").write_bytes(b"not a jpeg \xff\xd9")  # unreadable
    data = (val / "labels" / "val_00002.png").read_bytes()
    (val / "labels" / "val_00002.png").write_bytes(data[:-20])  # truncated PNG
    (test / "landmarks" / "test_00000.txt").write_text("105\n" + "1 2\n" * 105)  # wrong count
    (test / "landmarks" / "test_00001.txt").write_text("106\n" + "1 x\n" * 106)  # not numbers
    (test / "landmarks" / "test_00002.txt").unlink()  # missing: a warning, the letterbox crop is used
    return root


def test_every_defect_is_reported_with_its_file(broken):
    reports = {r.name: r for r in check_dataset(broken, workers=2)}
    errors = "\n".join(e for r in reports.values() for e in r.errors)
    expected = {
        "train_00000.jpg: image without a label",
        "orphan.png: label without an image",
        "train_00002.png: size 60x50 differs from its image's 96x96",
        "train_00003.png: values [12] outside 0..10",
        "train_00004.png: expected a 1-channel 8-bit (or palette) PNG, found mode RGB",
        "val_00000.jpg: truncated",
        "val_00001.jpg: unreadable",
        "val_00002.png: truncated",
        "test_00000.txt: expected the count 106 first",
        "test_00001.txt: coordinates must be numbers",
    }
    for fragment in expected:
        assert fragment in errors, f"{fragment!r} not reported in:\n{errors}"
    assert len(errors.splitlines()) == len(expected), errors
    assert any("test_00002.jpg: no landmark file" in w for w in reports["test"].warnings)
    assert (reports["train"].images, reports["train"].labels, reports["train"].landmarks) == (8, 8, 8)


def test_exit_codes_and_report(broken, tiny_root, capsys):
    assert main([str(tiny_root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "usable" in out and "NOT" not in out
    assert "inner_mouth" in out and "hair" in out  # class pixel frequencies
    assert main([str(broken), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert "NOT usable" in out and "orphan.png" in out
    assert main([str(broken / "nowhere")]) == 1


def test_the_layout_is_recognised_and_a_folder_of_none_lists_the_accepted_ones(tmp_path, tiny_root, capsys):
    assert main([str(tiny_root), "--workers", "1"]) == 0
    assert "lapa layout (recognised)" in capsys.readouterr().out
    for folder in (tmp_path / "empty", tmp_path / "other"):
        folder.mkdir()
    (tmp_path / "other" / "photos").mkdir()
    for folder in ("empty", "other"):
        assert main([str(tmp_path / folder), "--workers", "1"]) == 1
        err = capsys.readouterr().err
        assert "none of the layouts facseg reads: LaPa (ROOT/{train,val,test}" in err and "preprocessed" in err
    (tmp_path / "empty" / "images").mkdir()
    (tmp_path / "empty" / "masks").mkdir()  # CelebAMask-HQ's preprocessed layout, holding nothing
    assert main([str(tmp_path / "empty"), "--workers", "1"]) == 1
    assert "holds no celebamask images or labels" in capsys.readouterr().err


@pytest.mark.skipif(not (REAL_SAMPLES / "lapa-labelled").is_dir(), reason="../shared/real-samples is absent")
def test_real_lapa_files_pass_every_file_check():
    (report,) = [r for r in check_dataset(REAL_SAMPLES / "lapa-labelled", workers=1) if r.name == "test"]
    assert report.images == report.labels == 1 and not report.errors
    assert (report.class_pixels > 0).all()  # all 11 classes present in the sample
