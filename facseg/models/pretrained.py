"""Pretrained encoder weights, from a download or from a local file, for every architecture alike.

`encoder_weights`: null (random initialisation, the offline default), `imagenet` (SMP's ImageNet weights for the
U-Net and PSPNet encoders, torchvision's VGG16_BN_Weights.IMAGENET1K_V1 for SegNet: downloads), or the path of a
state dict saved with torch.save: a torchvision ResNet's or VGG-16-BN's (a classifier's `fc.`/`classifier.` keys
are ignored), or a timm model's for `tu-` encoders. A cluster without internet uses a copy of the file.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

CLASSIFIER_KEYS = ("fc.", "classifier.", "head.")


def is_path(encoder_weights: str | None) -> bool:
    return encoder_weights is not None and encoder_weights != "imagenet"


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a saved state dict (or of a checkpoint's `state_dict`), the classifier's dropped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model.encoder_weights={path}: no such file (expected a torch.save'd state dict)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"model.encoder_weights={path}: expected a state dict of tensors")
    return {k: v for k, v in state.items() if not k.startswith(CLASSIFIER_KEYS)}


def load_exactly(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor of `module` from `state`: a missing, unexpected or misshapen key is an error naming it."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or misshapen:
        problems = [
            f"{name}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for name, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", misshapen))
            if keys
        ]
        raise ValueError(f"model.encoder_weights={source} does not fit the encoder ({'; '.join(problems)})")
    module.load_state_dict(state)


def load_encoder(encoder: nn.Module, path: str) -> None:
    """An SMP encoder's weights from a file (a `tu-` encoder wraps its timm model as `.model`)."""
    load_exactly(getattr(encoder, "model", encoder), read_state_dict(path), path)


def vgg16_bn_state(encoder_weights: str) -> dict[str, torch.Tensor]:
    """torchvision's VGG-16-BN feature weights: its ImageNet download, or a file."""
    if is_path(encoder_weights):
        return read_state_dict(encoder_weights)
    from torchvision.models import VGG16_BN_Weights, vgg16_bn

    state = vgg16_bn(weights=VGG16_BN_Weights.IMAGENET1K_V1).state_dict()
    return {k: v for k, v in state.items() if k.startswith("features.")}
