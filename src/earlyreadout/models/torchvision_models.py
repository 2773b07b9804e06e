"""Any torchvision classification model by name (`convnext_tiny`, `efficientnet_b0`, `vit_b_16`, ...), with
pretrained weights from a local file."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.models.weights import load_backbone
from earlyreadout.params import Param


def classification_models() -> list[str]:
    """The names torchvision's classification models are built by."""
    import torchvision

    return torchvision.models.list_models(module=torchvision.models)


def classifier_name(model: nn.Module) -> str:
    """The module path of the model's last `nn.Linear` (the head a new class count replaces)."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no nn.Linear classifier to give the data's classes")
    return linears[-1]


def torchvision_model(arch: str, n_classes: int, weights: str | None) -> nn.Module:
    """torchvision's `arch` with `n_classes` outputs; with `weights` (a local state-dict file) every layer but the
    classifier is loaded from it."""
    import torchvision

    names = classification_models()
    if arch not in names:
        raise UserError(f"torchvision has no classification model {arch!r}{did_you_mean(arch, names)}")
    model = torchvision.models.get_model(arch, weights=None, num_classes=n_classes)
    if weights is not None:
        load_backbone(model, weights, head=[classifier_name(model)])
    return model


class TorchvisionSpec:
    """Any torchvision classification architecture; its stages are torchvision's standard stage names."""

    options: ClassVar[dict[str, Param]] = {
        "arch": Param("resnet18", "torchvision classification model name (torchvision.models.list_models())"),
        "weights": Param(None, "local file of pretrained weights for this architecture (a state dict); null = "
                         "random init", nullable=True, kind=str, path=True),
    }
    stages: ClassVar[list[str]] = []  # found on the built model (models/stages.py)

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, arch: str, weights: str | None) -> nn.Module:
        if info.get("modality") != "image":
            raise UserError("model 'torchvision' classifies images; this dataset is not images")
        return torchvision_model(arch, n_classes, weights)
