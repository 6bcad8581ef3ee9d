"""Train one model, test its best checkpoint (clean and occluded), write metrics.json and the test details.

    python -m facseg.run                                   one run with the defaults (U-Net, synthetic data)
    python -m facseg.run -m model=unet,segnet,pspnet       the architecture comparison, one job per model

A run whose output directory already holds `checkpoints/last.ckpt` resumes from it: give a run its directory
(`hydra.run.dir=DIR`, or `hydra.sweep.dir=DIR` for a sweep) and the same command continues it after a kill.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.runtime.errors import user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors
def main(cfg: DictConfig) -> float:
    from facseg.training.job import run_job  # torch and Lightning, once the config has composed

    return run_job(cfg)


if __name__ == "__main__":
    main()
