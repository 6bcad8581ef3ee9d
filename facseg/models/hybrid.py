"""The hybrid the study suggests: U-Net's skip-connected decoder for detail, PSPNet's pyramid pooling for global
context at its bottleneck.

It follows UPerNet (Xiao, Liu, Zhou, Jiang, Sun, ECCV 2018), which puts PSPNet's pyramid pooling module (Zhao et al.,
CVPR 2017) on the last stage of the encoder and feeds a top-down decoder with lateral connections from the earlier
stages; here the decoder is U-Net's (Ronneberger et al., MICCAI 2015: upsampling, concatenation with the encoder's
features at each scale, two 3x3 convolutions), so that the hybrid differs from its U-Net parent only by the pyramid.
The deepest features (stride 32) are pooled into 1x1, 2x2, 3x3 and 6x6 bins, each reduced to a quarter of the
channels, upsampled and concatenated with the features (PSPNet's module, SMP's implementation), and a 1x1
convolution with batch norm brings them back to the encoder's width for U-Net's decoder. Every parameter is used
and trained; the pyramid adds 3 C^2 parameters to the U-Net (C: the deepest stage's channels; 0.79 M at C = 512).
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPModule
from torch import nn

BINS = (1, 2, 3, 6)


class PyramidUNet(nn.Module):
    def __init__(self, num_classes: int, encoder: str = "resnet34", encoder_weights=None, **unet_options) -> None:
        super().__init__()
        self.unet = smp.Unet(encoder, encoder_weights=encoder_weights, classes=num_classes, **unet_options)
        channels = self.encoder.out_channels[-1]
        self.pyramid = nn.Sequential(
            PSPModule(channels, sizes=BINS),
            nn.Conv2d(2 * channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )

    @property
    def encoder(self) -> nn.Module:
        """As SMP's nets have it: pretrained weights load into `encoder` (facseg.models.pretrained)."""
        return self.unet.encoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        features = [*features[:-1], self.pyramid(features[-1])]
        return self.unet.segmentation_head(self.unet.decoder(features))
