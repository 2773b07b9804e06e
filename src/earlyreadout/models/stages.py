"""A model's layers resolved once (`ModelLayers`): its module names, path prefixes and stages, which every
layer setting (`stage:N` or a module path), every method, `diagnose`, the config check and `layers.json` read.

Stages, in order: a `stages` list the module declares (the project's adapters and any user model may set one),
the registry entry's declared stages, timm's `feature_info`, torchvision's standard stage names, and for any
other module its top-level children with parameters but the last (the classifier).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.models.layers import unknown_layer, unwrap
from earlyreadout.params import Param, named_layers


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


@dataclass(frozen=True)
class ModelLayers:
    """What a model's layers are: its class name, module names (None before the model is built, when only its
    declared stages are known), the prefixes its paths may omit, and its stages."""

    model: str
    modules: tuple[str, ...] | None
    path_prefixes: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()

    @classmethod
    def of(cls, network: nn.Module, declared: Sequence[str] = ()) -> ModelLayers:
        """The layers of a built `network` (`declared`: its registry entry's stages, if any)."""
        model = unwrap(network)
        return cls(type(model).__name__, tuple(n for n, _ in model.named_modules()),
                   tuple(getattr(model, "path_prefixes", ())), tuple(model_stages(model, declared)))

    @classmethod
    def declared(cls, model: str, stages: Sequence[str]) -> ModelLayers:
        """What is known of registry model `model` before it is built: the stages its entry declares."""
        return cls(model, None, (), tuple(stages))

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ModelLayers:
        """From a `layers.json` record (those written before stages were recorded have none)."""
        return cls(record["model"], tuple(record["modules"]), tuple(record.get("path_prefixes", ())),
                   tuple(record.get("stages", ())))

    def to_dict(self) -> dict[str, Any]:
        """The `layers.json` record."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def problem(self, spec: str, setting: str = "layer") -> str | None:
        """Why layer setting `setting`=`spec` names no layer of this model (a stage index out of range, an
        unknown module path, with the closest valid ones), or None when it names one."""
        if self.modules is None and (not spec.startswith("stage:") or not self.stages):
            return None  # not built yet: paths, and the stages of a model that names them once built, wait
        if not spec.startswith("stage:"):
            return unknown_layer(spec, list(self.modules), self.path_prefixes, self.model)
        return self._stage_problem(spec, setting)

    def _stage_problem(self, spec: str, setting: str) -> str | None:
        index = spec.removeprefix("stage:")
        if not self.stages:
            return (f"{setting}={spec!r} needs the model's named stages, which this model does not declare; "
                    "give a module path instead (see `earlyreadout list -v`)")
        if not index.isdigit() or not 1 <= int(index) <= len(self.stages):
            return f"{setting}={spec!r}: use stage:1 .. stage:{len(self.stages)} ({', '.join(self.stages)})"
        return None

    def resolve(self, spec: str, setting: str = "layer") -> str:
        """The module path `spec` names: `stage:N` is the N-th stage (1-based), anything else a module path;
        a UserError saying why when it names none."""
        problem = self._stage_problem(spec, setting) if spec.startswith("stage:") else self.problem(spec, setting)
        if problem:
            raise UserError(problem)
        return self.stages[int(spec.removeprefix("stage:")) - 1] if spec.startswith("stage:") else spec

    def problems(self, specs: Mapping[str, Param], values: Mapping[str, Any], owner: str) -> list[str]:
        """Every layer setting among `values` (declared by `specs`) that names no layer, as `owner: problem`."""
        return [f"{owner}: {p}" for key, layer in named_layers(specs, values) if (p := self.problem(layer, key))]
