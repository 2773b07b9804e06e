"""Small text classifiers over token ids: a transformer encoder and a bag of embeddings."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.params import Param


class TextTransformer(nn.Module):
    """Token + position embeddings, `layers` pre-norm encoder blocks (`encoder.layers.i`), [CLS] pooling."""

    def __init__(self, vocab_size: int, max_len: int, n_classes: int, dim: int, layers: int, heads: int,
                 pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.position = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        block = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embed(ids) + self.position[:, : ids.shape[1]]
        h = self.encoder(h, src_key_padding_mask=ids == self.pad_id)
        return self.fc(self.norm(h[:, 0]))


class BagOfEmbeddings(nn.Module):
    """Mean of token embeddings (padding excluded), a hidden layer, a linear output."""

    def __init__(self, vocab_size: int, n_classes: int, dim: int, pad_id: int = 0):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=pad_id)
        self.hidden = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.fc = nn.Linear(dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != self.pad_id).unsqueeze(-1).float()
        h = (self.embed(ids) * mask).sum(1) / mask.sum(1).clamp_min(1)
        return self.fc(self.hidden(h))


class TextTransformerSpec:
    options: ClassVar[dict[str, Param]] = {
        "dim": Param(64, "embedding width", low=8),
        "layers": Param(4, "encoder blocks", low=1),
        "heads": Param(4, "attention heads", low=1),
    }
    stages: ClassVar[list[str]] = ["embed", "encoder.layers.0", "encoder.layers.1", "encoder.layers.2",
                                   "encoder.layers.3"]

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, dim: int, layers: int, heads: int) -> nn.Module:
        return TextTransformer(info["vocab_size"], info["max_len"], n_classes, dim, layers, heads, info["pad_id"])


class BagOfEmbeddingsSpec:
    options: ClassVar[dict[str, Param]] = {"dim": Param(64, "embedding width", low=8)}
    stages: ClassVar[list[str]] = ["embed", "hidden"]

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, dim: int) -> nn.Module:
        return BagOfEmbeddings(info["vocab_size"], n_classes, dim, info["pad_id"])
