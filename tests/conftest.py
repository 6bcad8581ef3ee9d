"""Shared fixtures: a tiny synthetic LaPa-format set, a trained checkpoint, real faces from ../shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facseg.data.synthetic import SyntheticSpec, generate
from facseg.training.job import train
from tests.helpers import CELEBAMASK_MINI, NATURAL_TEST_ID, TINY, celebamask_ids, compose_train, tiny_data


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch):
    """W&B must never reach for the network in tests (CI has none); its files stay in tmp dirs."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "tiny"
    generate(root, SyntheticSpec(train=8, val=4, test=4, size=96, seed=1))
    return root


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tiny_root) -> Path:
    """A tiny trained U-Net's selected weights (predict, export and the demo page use it)."""
    run_dir = tmp_path_factory.mktemp("trained")
    # 10 epochs of 2 steps: enough for a net that tells a face from the background (one epoch is not: the
    # several-faces test of predict then depends on noise).
    overrides = [*TINY, *tiny_data(tiny_root), "logger=csv", "trainer.limit_train_batches=1.0", "trainer.max_epochs=10"]
    train(compose_train(overrides, run_dir))
    return Path(json.loads((run_dir / "metrics.json").read_text())["best_checkpoint"])


@pytest.fixture(scope="session")
def celebamask_small(tmp_path_factory) -> Path:
    """16 train, 4 val, 4 test real faces from the shared set, in its own (preprocessed) CelebAMask-HQ layout; the
    last test face wears a hat (a naturally occluded face)."""
    if not CELEBAMASK_MINI.is_dir():
        pytest.skip(f"{CELEBAMASK_MINI} is absent: the real-face tests need it")
    root = tmp_path_factory.mktemp("celebamask") / "small"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for split, count in (("train", 16), ("val", 4), ("test", 3)):
        chosen = celebamask_ids(split, count) + ([NATURAL_TEST_ID] if split == "test" else [])
        (root / f"{split}.txt").write_text("\n".join(chosen) + "\n")
        for id_ in chosen:
            for folder, suffix in (("images", ".jpg"), ("masks", ".png")):
                (root / folder / f"{id_}{suffix}").write_bytes(
                    (CELEBAMASK_MINI / folder / f"{id_}{suffix}").read_bytes()
                )
    return root
