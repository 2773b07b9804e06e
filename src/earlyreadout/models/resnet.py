"""torchvision ResNets, optionally adapted to small images (3x3 stem, no max-pool)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from earlyreadout.params import Param


def resnet(arch: str, n_classes: int, small_input: bool) -> nn.Module:
    """A randomly initialised torchvision ResNet with `n_classes` outputs; stages are `layer1`..`layer4`."""
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None, num_classes=n_classes)
    if small_input:
        model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


class ResNetSpec:
    options: ClassVar[dict[str, Param]] = {
        "arch": Param("resnet18", "torchvision architecture", choices=("resnet18", "resnet34", "resnet50")),
        "small_input": Param(True, "3x3 stride-1 stem without max-pool, for images under ~64 px"),
    }
    stages: ClassVar[list[str]] = ["layer1", "layer2", "layer3", "layer4"]

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, arch: str, small_input: bool) -> nn.Module:
        return resnet(arch, n_classes, small_input)
