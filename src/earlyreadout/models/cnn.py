"""A small convolutional network for 16-64 px images, with named stages `block1`..`block4`."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.params import Param


def conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU blocks (the first three halve the resolution), global average pool, linear."""

    def __init__(self, in_channels: int, n_classes: int, width: int = 32):
        super().__init__()
        w = [width, width * 2, width * 4, width * 4]
        self.block1 = conv_block(in_channels, w[0], pool=True)
        self.block2 = conv_block(w[0], w[1], pool=True)
        self.block3 = conv_block(w[1], w[2], pool=True)
        self.block4 = conv_block(w[2], w[3], pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w[3], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.block4(self.block3(self.block2(self.block1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class SmallCNNSpec:
    options: ClassVar[dict[str, Param]] = {"width": Param(32, "channels of the first block", low=1)}
    stages: ClassVar[list[str]] = ["block1", "block2", "block3", "block4"]

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, width: int) -> nn.Module:
        return SmallCNN(info["shape"][0], n_classes, width)
