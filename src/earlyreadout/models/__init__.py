"""Model registry: each entry declares its options, its named stages, and builds an `nn.Module`."""

from __future__ import annotations

from typing import Any

from torch import nn

from earlyreadout.models.cnn import SmallCNNSpec
from earlyreadout.models.factory import FactorySpec, canonical_factory
from earlyreadout.models.hf import HFSpec
from earlyreadout.models.resnet import ResNetSpec
from earlyreadout.models.stages import ModelLayers
from earlyreadout.models.text import BagOfEmbeddingsSpec, TextTransformerSpec
from earlyreadout.models.timm_models import TimmSpec
from earlyreadout.models.torchvision_models import TorchvisionSpec, classification_models
from earlyreadout.registry import Registry

MODELS: Registry[Any] = Registry("model", hint=", any torchvision classification model name (e.g. convnext_tiny), "
                                 "or FILE.py:CALLABLE / package.module:CALLABLE for your own")
MODELS.register("small-cnn")(SmallCNNSpec)
MODELS.register("resnet")(ResNetSpec)
MODELS.register("text-transformer")(TextTransformerSpec)
MODELS.register("bag-of-embeddings")(BagOfEmbeddingsSpec)
MODELS.register("timm")(TimmSpec)
MODELS.register("hf")(HFSpec)
MODELS.register("torchvision")(TorchvisionSpec)
MODELS.register("factory")(FactorySpec)


def canonical_model(name: str | None, options: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(registry name, options) of a model as a user may name it: a registered name, a factory spec
    (`my_models.py:Net`, stored with its file made absolute) or a torchvision classification model name."""
    if isinstance(name, str) and name not in MODELS:
        if ":" in name:
            return canonical_model("factory", {**options, "factory": name})
        if name in classification_models():
            return "torchvision", {**options, "arch": name}
    if name == "factory" and isinstance(options.get("factory"), str) and ":" in options["factory"]:
        return name, {**options, "factory": canonical_factory(options["factory"])}
    return name, options


def build_model(name: str, options: dict[str, Any], info: dict[str, Any], n_classes: int) -> nn.Module:
    """Build registered model `name` for a dataset described by `info` (its modality, shape or vocab)."""
    return MODELS.get(name).build(info, n_classes, **options)


__all__ = ["MODELS", "build_model", "canonical_model"]


def model_layers(name: str, network: nn.Module) -> ModelLayers:
    """The resolved layers of `network`, built from registry model `name` (whose entry may declare stages)."""
    return ModelLayers.of(network, MODELS.get(name).stages)
