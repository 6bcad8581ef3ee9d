"""SegNet (Badrinarayanan, Kendall, Cipolla, TPAMI 2017): VGG-16-BN encoder, decoder upsampling with pooling indices.

The encoder's 13 conv layers keep the argmax of every 2x2 max-pooling; the mirrored decoder puts each value back at
that position (MaxUnpool2d) and densifies the sparse map with convolutions. At width 1.0 the net has about 29.4 M
parameters, as in the paper; `width` scales every layer's channels for small machines. At width 1.0 the encoder
loads torchvision's VGG-16-BN weights (`load_vgg16_bn`), as the paper initialises it.
"""

from __future__ import annotations

import torch
from torch import nn

from facseg.models.pretrained import load_exactly

# VGG-16's five blocks, channels per conv layer.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SegNet(nn.Module):
    output_stride = 32  # five 2x2 poolings: input sides must be multiples of 32

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0) -> None:
        super().__init__()
        blocks = [tuple(max(1, round(c * width)) for c in block) for block in VGG16_BLOCKS]
        self.encoder = nn.ModuleList()
        channels = in_channels
        for block in blocks:
            layers = []
            for out_channels in block:
                layers.append(_conv_bn_relu(channels, out_channels))
                channels = out_channels
            self.encoder.append(nn.Sequential(*layers))

        # Decoder block i mirrors encoder block i: same convs in reverse, the last one returning to the channels
        # that entered the encoder block. The very last conv is the classifier (no BN, no ReLU).
        self.decoder = nn.ModuleList()
        inputs = [in_channels] + [block[-1] for block in blocks[:-1]]
        for i in reversed(range(len(blocks))):
            block = blocks[i]
            outs = list(reversed(block[:-1])) + [inputs[i]]
            layers = []
            channels = block[-1]
            for j, out_channels in enumerate(outs):
                if i == 0 and j == len(outs) - 1:
                    layers.append(nn.Conv2d(channels, num_classes, 3, padding=1))
                else:
                    layers.append(_conv_bn_relu(channels, out_channels))
                channels = out_channels
            self.decoder.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)

    def load_vgg16_bn(self, state: dict[str, torch.Tensor], source: str) -> None:
        """The encoder's 13 conv + BN layers from a torchvision VGG-16-BN state dict (`features.N.*` keys).

        VGG's convolutions have a bias and ours do not (a bias before BN is redundant): it is folded into the BN's
        running mean, which gives the same eval-mode output; in training BN subtracts the batch mean either way.
        """
        layers = sorted({int(k.split(".")[1]) for k in state if k.startswith("features.")})
        convs = [i for i in layers if state[f"features.{i}.weight"].dim() == 4]
        ours = [layer for block in self.encoder for layer in block]
        if len(convs) != len(ours):
            raise ValueError(f"model.encoder_weights={source}: expected VGG-16-BN's 13 conv layers, found {len(convs)}")
        mapped = {}
        for n, i in enumerate(convs):
            conv, bn = f"features.{i}", f"features.{i + 1}"
            bias = state.get(f"{conv}.bias", torch.zeros(state[f"{conv}.weight"].shape[0]))
            mapped[f"{n}.0.weight"] = state[f"{conv}.weight"]
            for key in ("weight", "bias", "running_var", "num_batches_tracked"):
                mapped[f"{n}.1.{key}"] = state[f"{bn}.{key}"]
            mapped[f"{n}.1.running_mean"] = state[f"{bn}.running_mean"] - bias
        load_exactly(nn.Sequential(*ours), mapped, source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.output_stride or x.shape[-2] % self.output_stride:
            raise ValueError(f"SegNet needs input sides divisible by {self.output_stride}, got {tuple(x.shape[-2:])}")
        indices, sizes = [], []
        for block in self.encoder:
            x = block(x)
            sizes.append(x.shape)
            x, idx = self.pool(x)
            indices.append(idx)
        for block, idx, size in zip(self.decoder, reversed(indices), reversed(sizes)):
            x = block(self.unpool(x, idx, output_size=size))
        return x
