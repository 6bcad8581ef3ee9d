"""Export a trained parser to ONNX or TorchScript, and check it against PyTorch.

    python -m facseg.export ckpt_path=logs/.../best.ckpt format=onnx           -> best.onnx beside the checkpoint
    python -m facseg.export ckpt_path=logs/.../best.ckpt format=torchscript    -> best.pt

The exported net takes N x 3 x S x S normalised crops (any N) and returns N x 11 x S x S logits. It carries the
crop settings it was trained with, so `python -m facseg.predict ckpt_path=best.onnx ...` cuts photos the same way.
The parity check runs PyTorch and the exported file on the same crops, prints the largest absolute logit
difference, and fails above `tolerance` (times the largest |logit| when that exceeds 1).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

import facseg  # noqa: F401  (registers the config resolvers)
from facseg.runtime.errors import user_errors


@hydra.main(version_base="1.3", config_path="conf", config_name="export")
@user_errors
def main(cfg: DictConfig) -> None:
    from facseg.models.exporting import export  # torch, once the config has composed

    export(cfg)


if __name__ == "__main__":
    main()
