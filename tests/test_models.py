import pytest
import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
import torchvision
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch import nn

from facseg.data.labels import LabelMap
from facseg.models.cost import gflops, parameters, used_parameters
from facseg.models.ensemble import Ensemble, Mirrored
from facseg.models.factory import available_architectures, build_net
from facseg.models.module import FaceSegModule
from facseg.models.pspnet import PSPNet
from facseg.models.segnet import SegNet
from tests.helpers import CONF_DIR

LAPA = LabelMap.named("lapa")
CLASS_NAMES = LAPA.names
HYBRIDS = ("hybrid", "deeplabv3plus")


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


@pytest.mark.parametrize("arch", ["unet", "pspnet", "fpn", "segnet", "hybrid"])
def test_factory_builds_every_family_with_matching_output(arch):
    options = {"width": 0.125} if arch == "segnet" else {"encoder": "resnet18"}
    net = build_net(arch, num_classes=11, **options).eval()
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 11, 64, 64)


def configured_module(model: str, capacity: str = "matched") -> FaceSegModule:
    with initialize_config_dir(CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"model={model}", f"capacity={capacity}"])
    return FaceSegModule(model=OmegaConf.to_container(cfg.model, resolve=True))


@pytest.mark.parametrize(
    "model, capacity",
    [("unet", "matched"), ("segnet", "matched"), ("pspnet", "matched"), ("pspnet", "paper")]
    + [("hybrid", "matched"), ("deeplabv3plus", "matched")],
)
def test_every_parameter_receives_a_gradient_in_a_training_step(model, capacity):
    """No dead weight: a parameter without a gradient would inflate the net's size without adding capacity (SMP's
    PSPNet left 10.5 M of 11.4 M idle). PSPNet's auxiliary head learns through its loss. (A gradient may be zero at
    initialisation: timm's ResNets start each residual branch's last BN at zero.)"""
    module = configured_module(model, capacity).train()
    batch = {"image": torch.randn(2, 3, 64, 64), "label": torch.randint(0, 11, (2, 64, 64))}
    module.training_step(batch, 0).backward()
    idle = [name for name, p in module.named_parameters() if p.grad is None]
    assert not idle


def test_used_parameters_leave_out_what_a_net_never_reaches():
    """SMP's own PSPNet (encoder_depth=3 by default) builds a whole ResNet and uses its first stages only."""
    cut_down = smp.create_model("pspnet", encoder_name="resnet18", encoder_weights=None, classes=11)
    assert used_parameters(cut_down, 64) < 0.2 * parameters(cut_down)
    unet = build_net("unet", 11, encoder="resnet18")
    assert used_parameters(unet, 64) == parameters(unet)


def test_matched_capacity_is_the_default_and_within_25_percent():
    """The three nets and the two hybrids: every used parameter within 25 % of every other net's count."""
    sizes = {m: used_parameters(configured_module(m).net, 64) for m in ("unet", "segnet", "pspnet", *HYBRIDS)}
    assert max(sizes.values()) <= 1.25 * min(sizes.values()), sizes
    assert sizes["hybrid"] == pytest.approx(8.86e6, rel=0.01) and sizes["deeplabv3plus"] == pytest.approx(
        7.53e6, rel=0.01
    )
    paper = {m: used_parameters(configured_module(m, "paper").net, 64) for m in ("segnet", "pspnet", *HYBRIDS)}
    assert paper["segnet"] == pytest.approx(29.4e6, rel=0.01) and paper["pspnet"] == pytest.approx(46.6e6, rel=0.01)
    assert paper["deeplabv3plus"] == pytest.approx(45.7e6, rel=0.01)  # the paper's ResNet-101


# docs/models.md's table: GFLOPs of one 128 px crop, a multiply-add counted as 2.
DOCUMENTED_GFLOPS = {
    ("unet", "matched"): 2.3,
    ("pspnet", "matched"): 4.0,
    ("segnet", "matched"): 5.1,
    ("hybrid", "matched"): 2.3,
    ("deeplabv3plus", "matched"): 1.8,
    ("unet", "paper"): 4.0,
    ("pspnet", "paper"): 22.2,
    ("segnet", "paper"): 20.2,
    ("hybrid", "paper"): 4.0,
    ("deeplabv3plus", "paper"): 7.0,
}


@pytest.mark.parametrize("model, capacity", list(DOCUMENTED_GFLOPS))
def test_the_documented_gflops_are_the_nets(model, capacity):
    assert round(gflops(configured_module(model, capacity).net, 128), 1) == DOCUMENTED_GFLOPS[model, capacity]


def test_the_hybrid_is_its_unet_parent_plus_pspnets_pyramid_at_the_bottleneck():
    hybrid, unet = configured_module("hybrid").net.eval(), configured_module("unet").net
    own = {n for n, _ in hybrid.named_parameters() if not n.startswith("unet.")}
    assert own and all(n.startswith("pyramid.") for n in own)  # nothing but the pyramid beside the U-Net
    assert {n.removeprefix("unet.") for n, _ in hybrid.named_parameters()} - {
        n for n, _ in unet.named_parameters()
    } == own
    psp = hybrid.pyramid[0]
    assert [b.pool_size for b in psp.blocks] == [1, 2, 3, 6]
    channels = hybrid.encoder.out_channels[-1]
    assert parameters(hybrid) - parameters(unet) == pytest.approx(3 * channels**2, rel=0.01)  # 4 x C^2/4 + 2C x C
    seen = []
    hybrid.pyramid.register_forward_hook(lambda module, args, output: seen.append((args[0].shape, output.shape)))
    with torch.no_grad():
        assert hybrid(torch.randn(1, 3, 64, 64)).shape == (1, 11, 64, 64)
    ((bottleneck, out),) = seen
    assert bottleneck == out and bottleneck[-1] == 2  # at stride 32, back to the encoder's width for the decoder


def test_pspnet_is_the_papers_dilated_net_with_an_auxiliary_head():
    net = PSPNet(num_classes=11, encoder="resnet18", aux=True).eval()
    x = torch.randn(1, 3, 64, 64)
    features = net.encoder(x)
    assert [f.shape[-1] for f in features[-3:]] == [8, 8, 8]  # stages 2-4 at output stride 8: dilated, not strided
    assert net.encoder.layer4[0].conv1.dilation == (4, 4) and net.encoder.layer3[0].conv1.dilation == (2, 2)
    assert [b.pool_size for b in net.pyramid.blocks] == [1, 2, 3, 6]
    logits, aux = net.forward_with_aux(x)
    assert logits.shape == aux.shape == (1, 11, 64, 64) and torch.equal(logits, net(x))
    # Used at test: everything but the auxiliary head.
    assert used_parameters(net, 64) == sum(p.numel() for n, p in net.named_parameters() if not n.startswith("aux"))
    assert PSPNet(num_classes=11, encoder="resnet18", aux=False).aux_head is None


def test_encoder_weights_load_from_a_local_file(tmp_path):
    """A pretrained arm runs offline from a copy of the weights; here, state dicts built locally, not downloaded."""
    resnet = torchvision.models.resnet18(weights=None)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    psp = build_net("pspnet", 11, encoder="resnet18", encoder_weights=str(tmp_path / "resnet18.pth"))
    assert torch.equal(psp.encoder.layer4[1].conv2.weight, resnet.layer4[1].conv2.weight)

    timm_net = timm.create_model("resnet10t", pretrained=False)
    torch.save(timm_net.state_dict(), tmp_path / "resnet10t.pth")
    unet = build_net("unet", 11, encoder="tu-resnet10t", encoder_weights=str(tmp_path / "resnet10t.pth"))
    assert torch.equal(unet.encoder.model.layer3[0].conv1.weight, timm_net.layer3[0].conv1.weight)

    vgg = torchvision.models.vgg16_bn(weights=None).eval()
    with torch.no_grad():  # non-trivial statistics and a conv bias, so that folding the bias is tested
        for m in vgg.features:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(), m.running_var.uniform_(0.5, 2)
            if isinstance(m, nn.Conv2d):
                m.bias.normal_()
    torch.save(vgg.state_dict(), tmp_path / "vgg16_bn.pth")
    segnet = build_net("segnet", 11, encoder_weights=str(tmp_path / "vgg16_bn.pth")).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():  # the first block (two conv-BN-ReLU) computes what VGG's first six layers compute
        assert torch.allclose(segnet.encoder[0](x), vgg.features[:6](x), atol=1e-5)

    with pytest.raises(
        ValueError, match=r"vgg16_bn.pth does not fit the encoder \(missing: bn1.*unexpected: features.0"
    ):
        build_net("pspnet", 11, encoder="resnet18", encoder_weights=str(tmp_path / "vgg16_bn.pth"))
    with pytest.raises(ValueError, match="width 1.0"):
        build_net("segnet", 11, width=0.5, encoder_weights=str(tmp_path / "vgg16_bn.pth"))
    with pytest.raises(FileNotFoundError, match="model.encoder_weights=.*nothing.pth: no such file"):
        build_net("unet", 11, encoder="resnet18", encoder_weights=str(tmp_path / "nothing.pth"))


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
    both = Ensemble([net, Mirrored(net, mirror)])  # flip test-time augmentation's two views
    assert torch.equal(both(images).argmax(1), net(images).argmax(1))


def test_a_custom_net_is_built_from_its_dotted_path_and_checked():
    custom = {"name": "mine", "arch": "custom", "net": {"_target_": "tests.custom_net.TinyNet", "width": 4}}
    module = FaceSegModule(model=custom)
    assert module(torch.zeros(2, 3, 32, 32)).shape == (2, 11, 32, 32)
    assert module.hparams.model["net"] == custom["net"]  # plain data in the checkpoint: rebuilt where importable
    with pytest.raises(ValueError, match=r"cannot import my_lab\.nets .*PYTHONPATH"):
        FaceSegModule(model={**custom, "net": {"_target_": "my_lab.nets.Net"}})
    with pytest.raises(ValueError, match="returned a str, not a torch nn.Module"):
        FaceSegModule(model={**custom, "net": {"_target_": "tests.custom_net.not_a_net"}})
    wrong = FaceSegModule(model={**custom, "net": {"_target_": "tests.custom_net.one_class_too_many"}})
    with pytest.raises(ValueError, match=r"expected N x 11 x 32 x 32 logits"):
        wrong(torch.zeros(2, 3, 32, 32))
