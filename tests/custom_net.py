"""Nets of a user's own, for `model=custom` (tests/test_models.py, tests/test_run.py)."""

from torch import nn


class TinyNet(nn.Module):
    """Two convolutions: N x 3 x H x W images to N x num_classes x H x W logits."""

    def __init__(self, num_classes: int, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, num_classes, 1)
        )

    def forward(self, images):
        return self.body(images)


def one_class_too_many(num_classes: int) -> nn.Module:
    return nn.Conv2d(3, num_classes + 1, 1)


def not_a_net(num_classes: int) -> str:
    return "a string"
