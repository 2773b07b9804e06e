"""Model registry: each entry declares its options, its named stages, and builds an `nn.Module`."""

from __future__ import annotations

from typing import Any

from torch import nn

from earlyreadout.models.cnn import SmallCNNSpec
from earlyreadout.models.hf import HFSpec
from earlyreadout.models.resnet import ResNetSpec
from earlyreadout.models.text import BagOfEmbeddingsSpec, TextTransformerSpec
from earlyreadout.models.timm_models import TimmSpec
from earlyreadout.registry import Registry

MODELS: Registry[Any] = Registry("model")
MODELS.register("small-cnn")(SmallCNNSpec)
MODELS.register("resnet")(ResNetSpec)
MODELS.register("text-transformer")(TextTransformerSpec)
MODELS.register("bag-of-embeddings")(BagOfEmbeddingsSpec)
MODELS.register("timm")(TimmSpec)
MODELS.register("hf")(HFSpec)


def build_model(name: str, options: dict[str, Any], info: dict[str, Any], n_classes: int) -> nn.Module:
    """Build registered model `name` for a dataset described by `info` (its modality, shape or vocab)."""
    return MODELS.get(name).build(info, n_classes, **options)


__all__ = ["MODELS", "build_model"]
