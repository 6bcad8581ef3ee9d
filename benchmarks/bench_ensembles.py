"""What scoring a study's ensembles costs: seconds of facseg.scoring.onepass.score for a study's ensembles (each
architecture's seeds, the architectures together per seed; equal and fitted weights) in one test pass, beside one
pass per ensemble (how the study scored them before). Untrained matched nets (the time does not depend on the
weights), the default synthetic test split, every default occluded condition; `--batches` test batches per loader.

    python benchmarks/bench_ensembles.py [--seeds 2] [--batches 4] [data overrides]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

import facseg
from facseg.models.module import FaceSegModule
from facseg.scoring.onepass import Scoring, score

MODELS = ("unet", "segnet", "pspnet")


def checkpoint(model: str, seed: int, overrides: list[str], folder: Path) -> str:
    """An untrained net of the default (matched) comparison, saved as a run saves its checkpoint's contents."""
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", *overrides])
    torch.manual_seed(seed)
    datamodule = hydra.utils.instantiate(cfg.data)
    module = FaceSegModule(model=OmegaConf.to_container(cfg.model, resolve=True), **datamodule.recorded_settings)
    path = folder / f"{model}-s{seed}.ckpt"
    contents = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    torch.save({**contents, "pytorch-lightning_version": pl.__version__}, path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=4, help="test batches per loader")
    parser.add_argument("overrides", nargs="*", help="data config overrides")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        best = {(m, s): checkpoint(m, s, args.overrides, folder) for m in MODELS for s in range(1, args.seeds + 1)}
        groups = [(m, [best[m, s] for s in range(1, args.seeds + 1)]) for m in MODELS]
        groups += [(f"all-s{s}", [best[m, s] for m in MODELS]) for s in range(1, args.seeds + 1)]
        scorings = [
            Scoring(
                f"{name} ({w})",
                tuple(paths),
                None if w == "equal" else tuple(range(1, len(paths) + 1)),
                folder / f"{name}-{w}",
            )
            for name, paths in groups
            for w in ("equal", "fitted")
        ]
        with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
            cfg = compose("evaluate", overrides=["~logger", *args.overrides])
        with open_dict(cfg):
            cfg.paths.output_dir = tmp
            cfg.trainer.enable_progress_bar = False
            cfg.trainer.limit_test_batches = args.batches
            # one precision both ways (under auto a net scored alone may get bf16, an ensemble of others float32)
            cfg.trainer.precision = "32-true"
        start = time.perf_counter()
        together = score(cfg, scorings)
        one_pass = time.perf_counter() - start
        start = time.perf_counter()
        alone = [score(cfg, [s])[0] for s in scorings]
        each = time.perf_counter() - start
    same = all(a["test/f1_fg"] == b["test/f1_fg"] for a, b in zip(together, alone))
    print(f"{len(scorings)} ensembles of {len(best)} checkpoints, {args.batches} test batches per loader")
    print(f"one pass for all   {one_pass:7.1f} s")
    print(f"one pass each      {each:7.1f} s")
    print(f"ratio {each / one_pass:.1f}x; the same mean F1 both ways: {same}")


if __name__ == "__main__":
    main()
