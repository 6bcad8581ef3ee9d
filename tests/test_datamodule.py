"""The data module: clear failures on broken folders, the crop cache, original-resolution test samples."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from facseg.data.cache import CropCache, cache_folder
from facseg.data.cache import main as prepare
from facseg.data.crop import CropSettings
from facseg.data.datamodule import FaceDataModule
from facseg.data.workers import MOST, loader_workers
from facseg.runtime.atomic import locked


def datamodule(root, **kwargs) -> FaceDataModule:
    return FaceDataModule(root=str(root), image_size=64, batch_size=2, **kwargs)


@pytest.fixture
def copy(tmp_path, tiny_root):
    root = tmp_path / "lapa"
    shutil.copytree(tiny_root, root)
    return root


def test_missing_root_or_split_names_the_layout_and_the_source(tmp_path, copy):
    with pytest.raises(FileNotFoundError, match=r"nowhere is not a LaPa-format folder.*images/NAME.jpg.*JDAI-CV"):
        datamodule(tmp_path / "nowhere").prepare_data()
    shutil.rmtree(copy / "val")
    with pytest.raises(FileNotFoundError, match=r"missing .*val/images"):
        datamodule(copy).prepare_data()


def test_unreadable_files_are_named_even_from_a_loader_worker(copy):
    (copy / "train" / "images" / "train_00003.jpg").write_bytes(b"garbage")
    dm = datamodule(copy, num_workers=1)
    dm.setup("fit")
    loader = torch.utils.data.DataLoader(dm.splits["train"], batch_size=8, num_workers=1)
    with pytest.raises(OSError, match=r"train_00003.jpg: unreadable image"):
        next(iter(loader))
    (copy / "val" / "landmarks" / "val_00001.txt").write_text("106\n1 2\n")
    with pytest.raises(ValueError, match=r"val_00001.txt: expected 106 x y pairs"):
        dm.splits["val"][1]


def test_crop_cache_is_built_used_and_rebuilt_when_stale(tmp_path, copy, caplog):
    cache_dir = tmp_path / "cache"
    prepare([str(copy), str(cache_dir), "--image-size", "64", "--workers", "1"])
    cached, direct = datamodule(copy, cache_dir=str(cache_dir)), datamodule(copy)
    for dm in (cached, direct):
        dm.prepare_data()
        dm.setup("fit")
    assert cached.splits["train"].cache is not None and direct.splits["train"].cache is None
    for i in range(3):
        a, b = cached.splits["val"][i], direct.splits["val"][i]
        torch.testing.assert_close(a["image"], b["image"])
        assert torch.equal(a["label"], b["label"])
    # Other settings: another cache, built on first use; the test split is scored on the photos, not cached.
    other = datamodule(copy, cache_dir=str(cache_dir), margin=0.3)
    other.setup("test")
    assert not any("align0.3" in p.name for p in next(cache_dir.iterdir()).iterdir())  # a test reads no crops
    other.setup("fit")
    folders = sorted(p.name for p in next(cache_dir.iterdir()).iterdir() if p.is_dir())
    assert folders == [
        "test-64px-align0.6",
        "train-64px-align0.3",
        "train-64px-align0.6",
        "val-64px-align0.3",
        "val-64px-align0.6",
    ]
    # A source file replaced: the cache no longer describes the data: refused as it is, rebuilt by the next run.
    label = copy / "train" / "labels" / "train_00000.png"
    label.write_bytes(label.read_bytes() + b"\0")
    settings = cached.settings
    with pytest.raises(
        ValueError,
        match=r"does not match the train split .*\(fingerprint differ\).*facseg.data.cache .* --format lapa",
    ):
        CropCache.find(cache_dir, "train", settings, cached.layout)
    again = datamodule(copy, cache_dir=str(cache_dir))
    again.setup("fit")
    assert "does not match the train split" in caplog.text and "rebuilding it" in caplog.text
    assert torch.equal(again.splits["train"][0]["label"], direct.splits["train"][0]["label"])


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="watches /proc for the lock being waited on")
def test_runs_that_start_at_once_build_a_crop_cache_once(tmp_path, copy):
    """Two processes want the same caches while a third builds: both wait on the lock beside the cache, then one
    builds each split and the other uses it."""
    cache_dir = tmp_path / "cache"
    train = cache_folder(cache_dir, copy, "train", CropSettings(image_size=64))
    lock = train.parent / f".{train.name}.lock"
    lock.parent.mkdir(parents=True)
    command = [sys.executable, "-m", "facseg.data.cache", str(copy), str(cache_dir), "--image-size", "64"]
    with locked(lock):
        runs = [subprocess.Popen([*command, "--workers", "1"], stderr=subprocess.PIPE, text=True) for _ in range(2)]
        deadline = time.monotonic() + 120
        while not all(any(f.resolve() == lock for f in Path(f"/proc/{r.pid}/fd").iterdir()) for r in runs):
            assert time.monotonic() < deadline and all(r.poll() is None for r in runs), "they did not wait"
            time.sleep(0.1)
        assert not any(p.is_dir() for p in lock.parent.iterdir())  # nothing built while the lock is held
    logs = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], logs
    assert sum(log.count("Building the") for log in logs) == 3, logs  # train, val and test, each once


def test_test_samples_keep_the_original_label_and_the_warp(copy):
    dm = datamodule(copy)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["label"].shape == (2, 64, 64)
    assert [tuple(label.shape) for label in batch["original_label"]] == [(96, 96), (96, 96)]
    assert batch["matrix"].shape == (2, 2, 3)
    crop_only = datamodule(copy, eval_resolution="crop")
    crop_only.setup("test")
    assert "original_label" not in next(iter(crop_only.test_dataloader()))
    with pytest.raises(ValueError, match="data.eval_resolution=pixels"):
        datamodule(copy, eval_resolution="pixels")


def test_alignment_and_letterbox_crops_differ(copy):
    aligned, letterboxed = datamodule(copy), datamodule(copy, align=False)
    for dm in (aligned, letterboxed):
        dm.setup("fit")
    a, b = aligned.splits["val"][0]["label"].numpy(), letterboxed.splits["val"][0]["label"].numpy()
    assert not np.array_equal(a, b)
    # The letterboxed square photo fills the crop exactly: every class of the photo is there.
    assert set(np.unique(b)) >= {0, 1, 10}


def test_occlusion_augmentation_is_off_by_default_and_configurable(copy):
    assert not any(type(t).__name__ == "RandomOccluder" for t in datamodule(copy).augmentations)
    dm = datamodule(copy, occlusion={"p": 1.0, "coverage": [0.3, 0.3]})
    dm.setup("fit")
    background = [(dm.splits["train"][i]["label"] == 0).float().mean() for i in range(4)]
    plain = datamodule(copy)
    plain.setup("fit")
    assert sum(background) > sum((plain.splits["train"][i]["label"] == 0).float().mean() for i in range(4))


def test_training_batches_depend_on_seed_and_epoch_only(copy):
    def first_batches(workers, epoch, seed=0):
        dm = datamodule(copy, num_workers=workers, seed=seed)
        dm.setup("fit")
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [b["image"] for b in loader]

    reference = first_batches(0, epoch=1)
    for other in first_batches(2, epoch=1):  # same with worker processes
        torch.testing.assert_close(other, reference.pop(0))
    assert not torch.equal(first_batches(0, epoch=2)[0], first_batches(0, epoch=1)[0])  # a new epoch, a new order
    assert not torch.equal(first_batches(0, epoch=1, seed=1)[0], first_batches(0, epoch=1)[0])


def test_occluded_test_batches_do_not_depend_on_the_worker_count(copy):
    def batches(workers):
        dm = datamodule(copy, num_workers=workers, occluded_test={"coverage": 0.3, "seed": 0, "kinds": ["hand", "bar"]})
        dm.setup("test")
        return [batch for loader in dm.test_dataloader() for batch in loader]

    reference = batches(0)
    assert len(reference) >= 4 and any("original_occluder" in batch for batch in reference)  # clean, occluded
    for batch, other in zip(reference, batches(2), strict=True):
        assert batch.keys() == other.keys()
        for key, value in batch.items():
            expected = other[key]
            if isinstance(value, list) and isinstance(value[0], torch.Tensor):  # photo-sized, one per image
                assert all(torch.equal(a, b) for a, b in zip(value, expected, strict=True)), key
            elif isinstance(value, torch.Tensor):
                assert torch.equal(value, expected), key
            else:
                assert value == expected, key


def test_auto_workers_none_on_a_cpu_and_each_gpus_share_of_the_cores_on_one():
    assert loader_workers("auto", "cpu", available=64) == 0
    assert loader_workers("auto", "gpu", gpus_on_node=4, available=32) == 7  # 8 cores a GPU, one for its process
    assert loader_workers("auto", "gpu", gpus_on_node=1, available=2) == 1
    assert loader_workers("auto", "gpu", gpus_on_node=8, available=4) == 1  # at least one
    assert loader_workers("auto", "gpu", gpus_on_node=1, available=128) == MOST
    assert loader_workers(3, "gpu") == loader_workers(3, "cpu") == 3  # a count is taken as given
    for wrong in (-1, "many", True, 2.5):
        with pytest.raises(ValueError, match=r"data.num_workers=.*expected a number of loader processes .* or auto"):
            loader_workers(wrong, "cpu")


def test_loader_settings_resolved_by_the_trainers_device(copy):
    with pytest.raises(ValueError, match="data.num_workers='eight'"):
        datamodule(copy, num_workers="eight")
    with pytest.raises(ValueError, match="data.pin_memory='yes': expected true, false or auto"):
        datamodule(copy, pin_memory="yes")
    dm = datamodule(copy)  # the defaults: auto, auto
    dm.trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert (loader.num_workers, loader.pin_memory) == (0, False)


def test_occluded_test_loader_is_the_test_split_with_fixed_occluders(copy):
    occluded_test = {"coverage": 0.3, "seed": 0, "kinds": ["hand", "bar"]}
    dm = datamodule(copy, occluded_test=occluded_test)
    dm.setup("test")
    clean_loader, occluded_loader = dm.test_dataloader()
    clean, occluded = next(iter(clean_loader)), next(iter(occluded_loader))
    for label, occluded_label, occluder in zip(
        clean["original_label"], occluded["original_label"], occluded["original_occluder"]
    ):
        assert occluder.shape == label.shape and occluder.any()
        assert (occluded_label[occluder] == 0).all()
        assert torch.equal(occluded_label[~occluder], label[~occluder])
        face = (label > 0) & (label < 10)
        assert (occluder & face).sum() == round(0.3 * face.sum().item())  # drawn on the photo it is scored on
    other = datamodule(copy, occluded_test=occluded_test, seed=5)  # another run seed: the same occluded photos
    other.setup("test")
    assert torch.equal(next(iter(other.test_dataloader()[1]))["image"], occluded["image"])
    on_crops = datamodule(copy, occluded_test=occluded_test, eval_resolution="crop")
    on_crops.setup("test")
    batch = next(iter(on_crops.test_dataloader()[1]))
    assert batch["occluder"].shape == batch["label"].shape and (batch["label"][batch["occluder"]] == 0).all()
    plain = datamodule(copy)
    plain.setup("test")
    assert isinstance(plain.test_dataloader(), torch.utils.data.DataLoader)  # off: the test split alone
