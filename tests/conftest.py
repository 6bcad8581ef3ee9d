"""Shared fixtures: a tiny synthetic LaPa-format set and Hydra configs composed over it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import facseg
from facseg.data.synthetic import SyntheticSpec, generate
from facseg.run import train

CONF_DIR = str(facseg.CONFIG_DIR)
REAL_SAMPLES = facseg.PROJECT_ROOT.parent / "shared" / "real-samples"
CELEBAMASK_MINI = facseg.PROJECT_ROOT.parent / "shared" / "real-data" / "celebamask-hq-mini"

# Settings that make any run tiny: a handful of 64 px images, one short epoch.
TINY = [
    "data.image_size=64",
    "data.batch_size=4",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


def tiny_data(root: Path) -> list[str]:
    """Overrides that point data= at the `tiny_root` set: ensure_synthetic finds its marker and reuses it."""
    return [
        f"data.root={root}",
        "data.synthetic.train=8",
        "data.synthetic.val=4",
        "data.synthetic.test=4",
        "data.synthetic.size=96",
        "data.synthetic.seed=1",
    ]


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


NATURAL_TEST_ID = "e15b89a1e93945ae8288ebcbe95e2f8f"  # a shared test face that wears a hat


def celebamask_ids(split: str, count: int) -> list[str]:
    """The first `count` ids of a split of the shared real CelebAMask-HQ faces."""
    return (CELEBAMASK_MINI / f"{split}.txt").read_text().split()[:count]


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


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """conf/train.yaml as Hydra composes it, with the output directory a run would get."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def run_facseg(
    args: list[str], cwd: Path, timeout: int = 600, env: dict[str, str] | None = None, **kwargs
) -> subprocess.CompletedProcess:
    """`python -m facseg.run ARGS` in a subprocess, as a user types it, with the output captured; `env` is set over
    subprocess_env()."""
    return subprocess.run(
        [sys.executable, "-m", "facseg.run", *args],
        cwd=cwd,
        env={**subprocess_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def subprocess_env() -> dict[str, str]:
    """A run's environment: offline W&B, and `tests` importable for the helpers that configs name.

    Without WANDB_SERVICE: W&B sets it in a process that started a run (an in-process test), and a child that
    inherits it joins that process's W&B service instead of starting its own, as a user's command would. A child
    killed by SIGKILL then leaves its run registered there, and the resumed child is refused ("run ID is in use").
    """
    return {
        **{k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"},
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(facseg.PROJECT_ROOT),
    }
