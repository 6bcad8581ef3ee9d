"""What the occluded test costs: seconds of trainer.test for one matched U-Net on the default synthetic test split
(100 photos), with only the primary occluded condition (the protocol before the severity, targeted, real and
realigned conditions) and with every default condition; each measured in turn, best of --repeats.

    python benchmarks/bench_test.py [--repeats 3] [run overrides, e.g. data.root=...]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import hydra
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import facseg
from facseg.models.module import FaceSegModule
from facseg.scoring.evaluator import TestEvaluator

PRIMARY_ONLY = [
    "data.occluded_test.severities=[]",
    "data.occluded_test.targets=null",
    "data.occluded_test.real=null",
    "data.occluded_test.realign=null",
]


def seconds(overrides: list[str]) -> tuple[float, int]:
    with initialize_config_dir(config_dir=str(facseg.CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["model=unet", *overrides])
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.prepare_data()
    module = FaceSegModule(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        labels=datamodule.labels.to_dict(),
        normalisation={"mean": list(datamodule.mean), "std": list(datamodule.std)},
    )
    trainer = pl.Trainer(
        logger=False, callbacks=[TestEvaluator()], enable_progress_bar=False, enable_model_summary=False
    )
    start = time.perf_counter()
    trainer.test(module, datamodule=datamodule, verbose=False)
    return time.perf_counter() - start, len(datamodule.test_stages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="run config overrides (the data, the crop size)")
    args = parser.parse_args()
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):
        for name, overrides in (("primary only", PRIMARY_ONLY), ("every condition", [])):
            found = seconds([*args.overrides, *overrides])
            best[name] = min(best.get(name, found), found)
    for name, (elapsed, loaders) in best.items():
        print(f"{name:16s} {loaders:2d} test loaders  {elapsed:6.1f} s")
    print(f"ratio {best['every condition'][0] / best['primary only'][0]:.1f}x")


if __name__ == "__main__":
    main()
