"""Architecture name -> nn.Module: our SegNet, PSPNet and the U-Net/PSPNet hybrid, any other architecture SMP
builds, or your own net."""

from __future__ import annotations

import importlib
from typing import Any

import segmentation_models_pytorch as smp
from torch import nn

from facseg.models.hybrid import PyramidUNet
from facseg.models.pretrained import is_path, load_encoder, vgg16_bn_state
from facseg.models.pspnet import PSPNet
from facseg.models.segnet import SegNet

# Faithful to their papers (SMP's PSPNet is a cut-down variant: facseg.models.pspnet), and the hybrid.
OURS = ("segnet", "pspnet", "hybrid")
CUSTOM = "custom"  # model=custom: model.net._target_ names the net


def available_architectures() -> list[str]:
    return sorted({*OURS, CUSTOM, *smp.MODEL_ARCHITECTURES_MAPPING})


def custom_net(num_classes: int, net: dict[str, Any]) -> nn.Module:
    """`net["_target_"]` (a dotted path to a class or function) called with num_classes and the other keys."""
    kwargs = dict(net)
    target = str(kwargs.pop("_target_", "") or "")
    module_name, _, attribute = target.rpartition(".")
    if not module_name:
        raise ValueError(f"model.net._target_={target!r}: expected a dotted path, e.g. my_package.nets.MyNet")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"model.net._target_={target}: cannot import {module_name} ({e}); install it or put its folder on "
            "PYTHONPATH (a checkpoint of a custom net needs its module wherever it is loaded)"
        ) from e
    if not hasattr(module, attribute):
        raise ValueError(f"model.net._target_={target}: {module_name} has no {attribute}")
    built = getattr(module, attribute)(num_classes=num_classes, **kwargs)
    if not isinstance(built, nn.Module):
        raise ValueError(f"model.net._target_={target} returned a {type(built).__name__}, not a torch nn.Module")
    return built


def build_net(
    arch: str,
    num_classes: int,
    encoder: str | None = None,
    encoder_weights: str | None = None,
    width: float = 1.0,
    aux: bool = False,
    options: dict[str, Any] | None = None,
    net: dict[str, Any] | None = None,
) -> nn.Module:
    """Build a segmentation net that maps N x 3 x H x W images to N x num_classes x H x W logits.

    `encoder_weights`: None (random init, offline), "imagenet" (a download) or a state dict's path
    (facseg.models.pretrained). `width` scales SegNet's channels; `aux` gives PSPNet its auxiliary head; `options`
    go to the architecture's constructor (e.g. SMP's decoder_channels, PSPNet's psp_channels). `net`: model=custom's
    target and arguments (`custom_net`).
    """
    arch, options = arch.lower(), dict(options or {})
    if arch == CUSTOM:
        return custom_net(num_classes, net or {})
    if aux and arch != "pspnet":
        raise ValueError(f"model.aux_weight > 0: only PSPNet has an auxiliary head, not {arch}")
    if arch == "segnet":
        if encoder not in (None, "vgg16_bn"):
            raise ValueError(f"model.encoder={encoder}: SegNet's encoder is its own VGG-16-BN")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or width <= 0:
            raise ValueError(f"model.width={width}: expected a positive channel multiplier (1.0: the paper's SegNet)")
        net = SegNet(num_classes, width=width, **options)
        if encoder_weights is not None:
            if width != 1.0:
                raise ValueError(
                    f"model.encoder_weights: VGG-16-BN weights fit SegNet at width 1.0, not {width}: add "
                    "capacity=paper (the paper's nets) or model.width=1.0"
                )
            net.load_vgg16_bn(vgg16_bn_state(encoder_weights), encoder_weights)
        return net
    if width != 1.0:
        raise ValueError(f"model.width={width}: width only scales SegNet; choose a smaller encoder instead")
    if arch == "pspnet":
        net = PSPNet(num_classes, encoder=encoder or "resnet50", aux=aux, **options)
        if encoder_weights == "imagenet":
            net.encoder = smp.encoders.get_encoder(net.encoder_name, depth=5, weights="imagenet", output_stride=8)
    elif arch == "hybrid" or arch in smp.MODEL_ARCHITECTURES_MAPPING:
        name = encoder or "resnet34"
        weights = None if is_path(encoder_weights) else encoder_weights
        if name.startswith("tu-") and weights is not None:
            weights = True  # timm encoders take a flag: the pretrained variant is part of the name
        if arch == "hybrid":
            net = PyramidUNet(num_classes, encoder=name, encoder_weights=weights, **options)
        else:
            net = smp.create_model(arch, encoder_name=name, encoder_weights=weights, classes=num_classes, **options)
    else:
        raise ValueError(f"model.arch={arch} is unknown; available: {', '.join(available_architectures())}")
    if is_path(encoder_weights):
        load_encoder(net.encoder, encoder_weights)
    return net
