"""torchvision ResNets: ImageNet weights from a local file, or adapted to small images (3x3 stem, no max-pool)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from earlyreadout.errors import ConfigError
from earlyreadout.models.weights import load_backbone
from earlyreadout.params import Param


def resnet(arch: str, n_classes: int, small_input: bool, weights: str | None = None) -> nn.Module:
    """A torchvision ResNet with `n_classes` outputs; stages are `layer1`..`layer4`.

    With `weights` (a torchvision ImageNet state-dict file such as `resnet50-0676ba61.pth`) every layer
    but the new `fc` head is loaded from it; otherwise the initialisation is random.
    """
    import torchvision

    if weights is not None and small_input:
        raise ConfigError("model.weights holds ImageNet weights for the standard 7x7 stem; "
                          "set model.small_input=false to use them")
    model = getattr(torchvision.models, arch)(weights=None, num_classes=n_classes)
    if small_input:
        model.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    if weights is not None:
        load_backbone(model, weights, head=["fc"])
    return model


SMALL_INPUT_BELOW = 64  # px: the standard stem downsamples 4x before layer1, too much below this


class ResNetSpec:
    options: ClassVar[dict[str, Param]] = {
        "arch": Param("resnet18", "torchvision architecture", choices=("resnet18", "resnet34", "resnet50")),
        "small_input": Param(None, "3x3 stride-1 stem without max-pool, for images under ~64 px; null = chosen "
                             "from the data: the small stem below 64 px without ImageNet weights, else the "
                             "standard 7x7 stride-2 stem and max-pool", nullable=True, kind=bool),
        "weights": Param(None, "local file of ImageNet weights (torchvision state dict); null = random init",
                         nullable=True, kind=str, path=True),
    }
    stages: ClassVar[list[str]] = ["layer1", "layer2", "layer3", "layer4"]

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, arch: str, small_input: bool | None,
              weights: str | None = None) -> nn.Module:
        if small_input is None:
            small_input = weights is None and min(info.get("shape", (3, 224, 224))[-2:]) < SMALL_INPUT_BELOW
        return resnet(arch, n_classes, small_input, weights)
