"""Any `timm` image model (when timm is installed), with pretrained weights from a local file."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from earlyreadout.errors import UserError, did_you_mean
from earlyreadout.models.weights import load_backbone
from earlyreadout.params import Param


def timm_model(arch: str, n_classes: int, in_chans: int, weights: str | None) -> nn.Module:
    """`timm.create_model(arch)` with `n_classes` outputs, its head kept fresh when `weights` are loaded."""
    try:
        import timm
    except ImportError:
        raise UserError("model 'timm' needs the `timm` package, which is not installed: pip install timm "
                        "(or use model 'resnet' for torchvision ResNets)") from None
    try:
        model = timm.create_model(arch, pretrained=False, num_classes=n_classes, in_chans=in_chans)
    except RuntimeError:
        raise UserError(f"timm has no model {arch!r}{did_you_mean(arch, timm.list_models())}") from None
    if weights is not None:
        head = getattr(model, "pretrained_cfg", {}).get("classifier", "fc")
        load_backbone(model, weights, head=[head] if isinstance(head, str) else list(head))
    return model


class TimmSpec:
    """Any `timm` architecture by name; layer paths are timm's module names (e.g. `stages.1`, `blocks.3`)."""

    options: ClassVar[dict[str, Param]] = {
        "arch": Param("resnet50", "timm model name (see timm.list_models())"),
        "weights": Param(None, "local file of pretrained weights for this architecture; null = random init",
                         nullable=True, kind=str, path=True),
    }
    stages: ClassVar[list[str]] = []  # architecture-specific: give readout layers by module path

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, arch: str, weights: str | None) -> nn.Module:
        if info.get("modality") != "image":
            raise UserError("model 'timm' classifies images; this dataset is not images")
        return timm_model(arch, n_classes, info["shape"][0], weights)
