"""What the tests share: constants, config composition, subprocess runs, and test-only pieces that runs load through
their config (`+callbacks.interrupt._target_=tests.helpers.Interrupt`). Fixtures are in conftest.py."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

import facseg

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

# The test protocol cut to the clean split and the primary occluded condition, for tests whose subject is not the
# other conditions: each is one more pass over the test split (conf/data/lapa.yaml, occluded_test).
FEW_CONDITIONS = [
    "data.occluded_test.severities=[]",
    "data.occluded_test.targets=null",
    "data.occluded_test.real=null",
    "data.occluded_test.realign=null",
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


NATURAL_TEST_ID = "e15b89a1e93945ae8288ebcbe95e2f8f"  # a shared test face that wears a hat


def celebamask_ids(split: str, count: int) -> list[str]:
    """The first `count` ids of a split of the shared real CelebAMask-HQ faces."""
    return (CELEBAMASK_MINI / f"{split}.txt").read_text().split()[:count]


def compose_train(overrides: list[str], output_dir: Path) -> DictConfig:
    """conf/train.yaml as Hydra composes it, with the output directory a run would get."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def compose_evaluate(overrides: list[str], output_dir: Path, wandb: bool = False) -> DictConfig:
    """conf/evaluate.yaml as Hydra composes it (W&B off unless `wandb`), writing into `output_dir`."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("evaluate", overrides=[*overrides, *([] if wandb else ["~logger"])])
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        cfg.trainer.enable_progress_bar = False
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


class Interrupt(pl.Callback):
    """Send `signal` to this very process after training batch `step` (global), once: a marker file remembers.
    `group`: to its whole process group (its DataLoader workers too), as SLURM and `timeout` do."""

    def __init__(self, step: int, signal: int, marker: str, group: bool = False) -> None:
        self.step, self.signal, self.marker, self.group = step, signal, Path(marker), group

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(f"interrupted at epoch {trainer.current_epoch}, batch {batch_idx}\n")
            if self.group:
                os.killpg(os.getpgrp(), self.signal)
            else:
                os.kill(os.getpid(), self.signal)


def same_number(key: str, value: float | None):
    """What another pass's value of `key` must equal: a fraction to 1e-6, HD95 (pixels, float32) to 1e-4 px; NaN
    (JSON's null) as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return pytest.approx(value, abs=1e-4 if "hd95" in key else 1e-6)
