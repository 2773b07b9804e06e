"""A built model's stages (what `stage:N` and the default readout layers name), found once from the model itself.

In order: a `stages` list the module declares (the project's adapters and any user model may set one), the
registry entry's declared stages, timm's `feature_info`, torchvision's standard stage names, and for any other
module its top-level children with parameters but the last (the classifier).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from earlyreadout.models.layers import unwrap


def timm_stages(model: nn.Module) -> list[str]:
    """The module paths of timm's `feature_info` (a list of dicts with a `module` key, or a FeatureInfo)."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return []
    entries = info.info if hasattr(info, "info") else info
    if not isinstance(entries, Sequence):
        return []
    return [e["module"] for e in entries if isinstance(e, dict) and isinstance(e.get("module"), str) and e["module"]]


def _is_stage(module: nn.Module) -> bool:
    """A sequence of blocks of one kind (torchvision's ConvNeXt / Swin / EfficientNet stages)."""
    kinds = {type(m).__name__ for m in module.children()}
    return len(kinds) == 1 and next(iter(kinds)).endswith(("Block", "MBConv", "InvertedResidual"))


def torchvision_stages(model: nn.Module) -> list[str]:
    """torchvision's standard stage names: ResNet-style `layer1..4`, RegNet `trunk_output.block*`, DenseNet
    `features.denseblock*`, ViT `encoder.layers.*`, and the block sequences inside `features` (ConvNeXt,
    Swin, EfficientNet)."""
    names = dict(model.named_modules())
    if all(f"layer{i}" in names for i in (1, 2, 3, 4)):
        return [f"layer{i}" for i in (1, 2, 3, 4)]
    for parent, prefix in (("trunk_output", "block"), ("features", "denseblock")):
        found = [n for n in names if n.startswith(f"{parent}.{prefix}") and n.count(".") == 1]
        if found:
            return found
    layers = names.get("encoder.layers")
    if layers is not None and len(list(layers.children())) > 1:
        return [f"encoder.layers.{n}" for n, _ in layers.named_children()]
    features = names.get("features")
    if features is not None:
        found = [f"features.{n}" for n, m in features.named_children() if _is_stage(m)]
        if len(found) > 1:
            return found
    return []


def child_stages(model: nn.Module) -> list[str]:
    """Top-level children that hold parameters, but the last (the classifier): any plain `nn.Module`'s stages."""
    children = [n for n, m in model.named_children() if any(True for _ in m.parameters())]
    return children[:-1]


def model_stages(network: nn.Module, declared: Sequence[str] = ()) -> list[str]:
    """The stages of a built `network` (see the module docstring for the order in which they are looked up)."""
    model = unwrap(network)
    own = getattr(model, "stages", None)
    if isinstance(own, (list, tuple)) and own:
        return list(own)
    if declared:
        return list(declared)
    return timm_stages(model) or torchvision_stages(model) or child_stages(model)
