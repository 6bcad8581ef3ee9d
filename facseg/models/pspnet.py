"""PSPNet (Zhao, Shi, Qi, Wang, Jia, CVPR 2017): a dilated ResNet at output stride 8, the pyramid pooling module on
its last stage, and in training an auxiliary head on stage 3.

All four stages of the ResNet are used; stages 3 and 4 keep their stride-8 resolution with dilations 2 and 4 (so
pretrained ResNet weights load unchanged). The pyramid pools the last stage's features into 1x1, 2x2, 3x3 and 6x6
bins, reduces each to a quarter of the channels, upsamples them back and concatenates them with the features; a
3x3 convolution, dropout 0.1 and a 1x1 classifier follow, and the logits are upsampled 8x. The auxiliary head
(3x3 convolution to a quarter of the channels, dropout, classifier on stage 3) exists only when its loss weight is
positive (the paper's 0.4): it is trained through `forward_with_aux` and ignored at test, so it never counts as a
used parameter there.

SMP's own PSPNet differs: it stops after stage 3 by default (encoder_depth=3) without dilation, and has no
auxiliary loss.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPModule
from torch import nn

BINS = (1, 2, 3, 6)


def _head(in_channels: int, channels: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(channels, num_classes, 1),
    )


class PSPNet(nn.Module):
    output_stride = 8

    def __init__(
        self,
        num_classes: int,
        encoder: str = "resnet50",
        psp_channels: int = 512,
        aux: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if not encoder.removeprefix("tu-").startswith(("resnet", "resnext")):
            raise ValueError(f"model.encoder={encoder}: PSPNet's encoder is a dilated ResNet (resnet18 ... resnet152)")
        self.encoder_name = encoder
        self.encoder = smp.encoders.get_encoder(encoder, depth=5, output_stride=self.output_stride)
        stage3, stage4 = self.encoder.out_channels[-2:]
        self.pyramid = PSPModule(stage4, sizes=BINS)
        self.head = _head(2 * stage4, psp_channels, num_classes, dropout)
        self.aux_head = _head(stage3, stage3 // 4, num_classes, dropout) if aux else None

    def _logits(self, features: torch.Tensor, size: torch.Size, head: nn.Module) -> torch.Tensor:
        return F.interpolate(head(features), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)[-1]
        return self._logits(self.pyramid(features), x.shape[-2:], self.head)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits and the auxiliary head's (on stage 3), both at the input's size: the training forward."""
        if self.aux_head is None:
            raise RuntimeError("this PSPNet has no auxiliary head (model.aux_weight=0)")
        *_, stage3, stage4 = self.encoder(x)
        size = x.shape[-2:]
        return self._logits(self.pyramid(stage4), size, self.head), self._logits(stage3, size, self.aux_head)
