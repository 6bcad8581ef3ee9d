"""Score checkpoints on the test split, alone or as an ensemble, and write metrics.json with the training keys.

    python -m facseg.evaluate ckpt_path=logs/runs/.../checkpoints/best-epoch007.ckpt
    python -m facseg.evaluate "ckpt_paths=[A.ckpt,B.ckpt,C.ckpt]" "weights=[2,1,1]"

An ensemble averages the members' softmax probabilities (weighted), so its RMSE is that of the averaged
probabilities and its prediction their argmax. Scored at the original resolution, a single net's logits are warped
back to the photo, an ensemble's log-probabilities: the two interpolations differ slightly in RMSE.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from torch import nn

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.io import write_json
from facseg.models.module import FaceSegModule
from facseg.results import test_metrics, write_test_details


class Ensemble(nn.Module):
    """Log of the weighted mean of the members' softmax probabilities: logits whose softmax is that mean."""

    def __init__(self, nets: list[nn.Module], weights: list[float] | None = None) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)
        weights = torch.tensor(weights if weights is not None else [1.0] * len(nets), dtype=torch.float32)
        if len(weights) != len(nets) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights={weights.tolist()}: expected {len(nets)} non-negative weights, not all zero")
        self.register_buffer("weights", weights / weights.sum())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probs = sum(w * net(images).float().softmax(1) for w, net in zip(self.weights, self.nets))
        return probs.clamp_min(1e-12).log()


def load(path: str) -> FaceSegModule:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    return FaceSegModule.load_from_checkpoint(path, map_location="cpu", weights_only=True)


def evaluate(cfg: DictConfig) -> dict:
    paths = list(cfg.ckpt_paths) or ([cfg.ckpt_path] if cfg.ckpt_path else [])
    if not paths:
        raise ValueError("give ckpt_path=PATH, or ckpt_paths=[A,B,...] for an ensemble")
    if cfg.ckpt_path and cfg.ckpt_paths:
        raise ValueError("give ckpt_path or ckpt_paths, not both")
    pl.seed_everything(cfg.seed)
    members = [load(p) for p in paths]
    module = members[0]
    names = [m.hparams.model["name"] for m in members]
    if len(members) > 1:
        module.net = Ensemble([m.net for m in members], list(cfg.weights) if cfg.weights else None)
    datamodule = hydra.utils.instantiate(cfg.data)
    trainer: pl.Trainer = hydra.utils.instantiate(cfg.trainer)
    trainer.test(module, datamodule=datamodule, weights_only=True)
    metrics = {
        "model": names[0] if len(names) == 1 else "ensemble(" + "+".join(names) + ")",
        "data": cfg.data.name,
        "eval_resolution": datamodule.eval_resolution,
        "align": datamodule.settings.align,
        "checkpoints": [str(p) for p in paths],
        "weights": [float(w) for w in module.net.weights] if len(members) > 1 else None,
        **test_metrics(trainer),
    }
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / "metrics.json", metrics)
    write_test_details(module, output_dir)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
