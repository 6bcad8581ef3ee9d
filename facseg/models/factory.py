"""Architecture name -> nn.Module: our SegNet, or any architecture segmentation-models-pytorch builds."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from facseg.models.segnet import SegNet


def available_architectures() -> list[str]:
    return sorted({"segnet", *smp.MODEL_ARCHITECTURES_MAPPING})


def build_net(
    arch: str,
    num_classes: int,
    encoder: str | None = None,
    encoder_weights: str | None = None,
    width: float = 1.0,
    options: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a segmentation net that maps N x 3 x H x W images to N x num_classes x H x W logits.

    `encoder_weights` defaults to None (random init): SMP's own default, "imagenet", is a download.
    `width` scales SegNet's channels; `options` go to the SMP architecture's constructor (e.g. decoder_channels).
    """
    arch = arch.lower()
    if arch == "segnet":
        if encoder not in (None, "vgg16_bn"):
            raise ValueError(f"model.encoder={encoder}: SegNet's encoder is its own VGG-16-BN")
        if encoder_weights is not None:
            raise ValueError(f"model.encoder_weights={encoder_weights}: SegNet has no pretrained weights here")
        return SegNet(num_classes, width=width, **(options or {}))
    if arch not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ValueError(f"model.arch={arch} is unknown; available: {', '.join(available_architectures())}")
    if width != 1.0:
        raise ValueError(f"model.width={width}: width only scales SegNet; choose a smaller SMP encoder instead")
    return smp.create_model(
        arch,
        encoder_name=encoder or "resnet34",
        encoder_weights=encoder_weights,
        classes=num_classes,
        **(options or {}),
    )
