import pytest
import torch
import torch.nn.functional as F
from torch import nn

from facseg.data.labels import LabelMap
from facseg.models.ensemble import Ensemble, Mirrored, with_flip_tta
from facseg.models.factory import available_architectures, build_net
from facseg.models.segnet import SegNet

LAPA = LabelMap.named("lapa")
CLASS_NAMES = LAPA.names


def test_segnet_is_the_papers_net_at_full_width():
    net = SegNet(num_classes=11)
    convs = [m for m in net.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13  # VGG-16's conv layers
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.encoder.modules()) == 13  # VGG-16-BN
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(29.4e6, rel=0.01)
    assert isinstance(net.unpool, nn.MaxUnpool2d) and net.pool.return_indices


def test_segnet_decoder_unpools_at_its_own_encoders_argmax():
    """Each decoder block starts from a sparse map, non-zero only where the mirrored encoder block's 2x2 maxima were:
    what sets SegNet apart from a decoder that upsamples (U-Net, FCN)."""
    net = SegNet(num_classes=3, width=0.125).eval()
    encoded, decoder_inputs = [], []
    for block in net.encoder:
        block.register_forward_hook(lambda module, args, output: encoded.append(output))
    for block in net.decoder:
        block.register_forward_pre_hook(lambda module, args: decoder_inputs.append(args[0]))
    with torch.no_grad():
        assert net(torch.randn(2, 3, 64, 64)).shape == (2, 3, 64, 64)
    for features, unpooled in zip(reversed(encoded), decoder_inputs):
        _, argmax = F.max_pool2d(features, 2, return_indices=True)
        at_maxima = torch.zeros_like(features).flatten(2).scatter_(2, argmax.flatten(2), 1.0).view_as(features)
        assert unpooled.shape == features.shape
        assert (unpooled[at_maxima == 0] == 0).all()  # nothing off the encoder's maxima
        assert (unpooled[at_maxima == 1] != 0).float().mean() > 0.3  # and values at them (ReLU zeros some)


def test_segnet_rejects_sides_not_divisible_by_32():
    with pytest.raises(ValueError, match="divisible by 32"):
        SegNet(num_classes=3, width=0.125)(torch.randn(1, 3, 48, 48))


@pytest.mark.parametrize("arch", ["unet", "pspnet", "fpn", "segnet"])
def test_factory_builds_every_family_with_matching_output(arch):
    options = {"width": 0.125} if arch == "segnet" else {"encoder": "resnet18"}
    net = build_net(arch, num_classes=11, **options).eval()
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def test_factory_errors_name_the_key():
    with pytest.raises(ValueError, match="model.arch=nosuchnet is unknown; available: .*segnet.*unet"):
        build_net("nosuchnet", 11)
    with pytest.raises(ValueError, match="model.encoder=resnet34"):
        build_net("segnet", 11, encoder="resnet34")
    with pytest.raises(ValueError, match="model.width"):
        build_net("unet", 11, width=0.5)
    assert {"segnet", "unet", "pspnet", "deeplabv3plus"} <= set(available_architectures())


def test_flip_tta_swaps_left_and_right_back():
    """A net that labels the image's left half left_eye and its right half right_eye is right whichever way the
    image is mirrored: its mirrored view must agree with it exactly, and so must the two views' average."""

    class HalvesNet(nn.Module):
        def forward(self, images):
            logits = torch.zeros(len(images), len(CLASS_NAMES), *images.shape[-2:])
            half = images.shape[-1] // 2
            logits[:, CLASS_NAMES.index("left_eye"), :, :half] = 5.0
            logits[:, CLASS_NAMES.index("right_eye"), :, half:] = 5.0
            return logits

    images, mirror = torch.randn(2, 3, 8, 8), torch.from_numpy(LAPA.mirror())
    net = HalvesNet()
    assert torch.equal(Mirrored(net, mirror)(images), net(images))
    both = with_flip_tta(net, mirror)
    assert torch.equal(both(images).argmax(1), net(images).argmax(1))
    assert len(with_flip_tta(Ensemble([net, net], [3, 1]), mirror).nets) == 4  # each member's two views
