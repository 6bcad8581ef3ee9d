"""Score checkpoints on the test split, alone or as an ensemble, and write metrics.json with the training keys.

    python -m facseg.evaluate ckpt_path=logs/runs/.../checkpoints/best.ckpt
    python -m facseg.evaluate "ckpt_paths=[A.ckpt,B.ckpt,C.ckpt]" "weights=[2,1,1]"

A checkpoint is scored with the settings it was trained with (crop, class set, normalisation), read from the
checkpoint itself: the data config only says where the data is and how to score it. An explicit data override that
contradicts the checkpoint, and an ensemble whose members disagree, are refused (facseg.scoring.checkpoints). Data
labelled in another class set is scored in the checkpoint's classes through the mapping the data's class set
declares (a LaPa-class net on CelebAMask-HQ: `data=celebamask`); without one, the error names what to declare. An
ensemble averages the members' softmax probabilities (weighted) at the resolution scored, each member's logits
warped back onto the photo exactly as a single net's are: an ensemble of a checkpoint with itself scores as the
checkpoint. `tta=flip` adds each net's view of the mirrored photo (left/right classes swapped back) to the average,
with equal weight. facseg.scoring.onepass scores several checkpoints and ensembles in one test pass.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.runtime.errors import user_errors


def evaluate(cfg: DictConfig) -> dict:
    """What the config names (ckpt_path, or ckpt_paths and weights) scored into paths.output_dir."""
    paths = list(cfg.ckpt_paths) or ([cfg.ckpt_path] if cfg.ckpt_path else [])
    if not paths:
        raise ValueError("give ckpt_path=PATH, or ckpt_paths=[A,B,...] for an ensemble")
    if cfg.ckpt_path and cfg.ckpt_paths:
        raise ValueError("give ckpt_path or ckpt_paths, not both")
    missing = [path for path in paths if not Path(path).is_file()]
    if missing:
        output_dir = Path(cfg.paths.output_dir)  # Hydra made it: nothing was scored, leave nothing behind
        if HydraConfig.initialized() and output_dir.is_dir():
            found = set(os.listdir(output_dir))
            if found == {name for name in found if name == ".hydra" or name.endswith(".log")}:
                shutil.rmtree(output_dir)
        raise FileNotFoundError(f"{', '.join(map(str, missing))}: no such checkpoint (ckpt_path / ckpt_paths)")
    from facseg.scoring.onepass import Scoring, score  # torch and Lightning, once the config has composed

    weights = tuple(cfg.weights) if cfg.weights else None
    (metrics,) = score(cfg, [Scoring(cfg.name, tuple(paths), weights, Path(cfg.paths.output_dir))])
    return metrics


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@user_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
