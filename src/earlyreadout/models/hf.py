"""Hugging Face `transformers` sequence classifiers (BERT, DistilBERT, ...) from a local folder.

The adapter takes the padded id rows the text datasets produce, builds the attention mask (and BERT's
segment ids for sentence pairs) and returns logits. Its layers keep their natural names: hooks resolve
`encoder.layer.1` (BERT) or `distilbert.transformer.layer.1` through the adapter's `path_prefixes`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from earlyreadout.errors import UserError
from earlyreadout.params import Param


def segment_ids(ids: torch.Tensor, sep_id: int, mask: torch.Tensor) -> torch.Tensor:
    """BERT token types of `[CLS] a [SEP] b [SEP] pad`: 0 up to and including the first [SEP], 1 after, 0 on padding."""
    is_sep = (ids == sep_id).long()
    return ((is_sep.cumsum(1) - is_sep).clamp(max=1) * mask).long()


class HFClassifier(nn.Module):
    """A `transformers` sequence classifier called on padded token ids (`pad_id` marks padding)."""

    def __init__(self, model: nn.Module, pad_id: int, sep_id: int | None):
        super().__init__()
        self.hf = model
        self.pad_id = pad_id
        accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self.sep_id = sep_id if accepts_types and getattr(model.config, "type_vocab_size", 0) > 1 else None
        base = getattr(model, "base_model_prefix", "")
        self.path_prefixes = ("hf.",) + ((f"hf.{base}.",) if base and hasattr(model, base) else ())
        self.stages = hidden_layer_paths(model)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.long()
        mask = (ids != self.pad_id).long()
        extra = {} if self.sep_id is None else {"token_type_ids": segment_ids(ids, self.sep_id, mask)}
        return self.hf(input_ids=ids, attention_mask=mask, **extra).logits


def hidden_layer_paths(model: nn.Module) -> list[str]:
    """Paths of the embeddings and each transformer block inside the base model (`embeddings`,
    `encoder.layer.0`, ... for BERT; `transformer.layer.i` for DistilBERT)."""
    inner = getattr(model, getattr(model, "base_model_prefix", ""), model)
    names = [n for n, _ in inner.named_modules()]
    blocks = [n for n in names if n.rsplit(".", 1)[-1].isdigit() and n.rsplit(".", 1)[0].endswith("layer")]
    return [n for n in names if n == "embeddings"] + blocks


def load_hf(path: str, n_classes: int, pretrained: bool, info: dict[str, Any]) -> nn.Module:
    """The model in local folder `path` with an `n_classes` head (a fresh head when the sizes differ)."""
    try:
        from transformers import AutoConfig, AutoModelForSequenceClassification
    except ImportError:
        raise UserError("model 'hf' needs the `transformers` package: pip install transformers") from None
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        found = ", ".join(sorted(p.name for p in folder.iterdir())) if folder.is_dir() else "(no such folder)"
        raise UserError(f"model.path {str(folder)!r} holds no config.json of a Hugging Face model; found: {found}")
    config = AutoConfig.from_pretrained(str(folder), num_labels=n_classes, local_files_only=True)
    if info.get("tokenizer") is None:
        if pretrained:
            raise UserError("a pretrained Hugging Face model needs its own tokenizer: set data.tokenizer to the "
                            f"model folder ({str(folder)!r}), or model.pretrained=false to train from scratch")
        config.vocab_size, config.pad_token_id = info["vocab_size"], info["pad_id"]
    if info["vocab_size"] > config.vocab_size:
        raise UserError(f"the tokenizer has {info['vocab_size']} tokens but the model in {str(folder)!r} only "
                        f"{config.vocab_size}; use the tokenizer saved with this model")
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and info["max_len"] > positions:
        raise UserError(f"data.max_len={info['max_len']} exceeds the model's {positions} positions; lower it")
    if not pretrained:
        return AutoModelForSequenceClassification.from_config(config)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            str(folder), config=config, local_files_only=True, ignore_mismatched_sizes=True)
    except OSError as e:
        raise UserError(f"cannot load pretrained weights from {str(folder)!r} ({str(e).splitlines()[0]}); "
                        "set model.pretrained=false to train from a random initialisation on purpose") from None


class HFSpec:
    """Any `transformers` sequence classifier saved with `save_pretrained` in a local folder."""

    options: ClassVar[dict[str, Param]] = {
        "path": Param(None, "local folder of the model (config.json + weights), e.g. bert-base-uncased",
                      nullable=True, kind=str, path=True),
        "pretrained": Param(True, "load the folder's weights; false = the same architecture randomly initialised"),
    }
    stages: ClassVar[list[str]] = []  # model-specific: the built adapter lists them in `.stages`

    @staticmethod
    def build(info: dict[str, Any], n_classes: int, path: str | None, pretrained: bool) -> nn.Module:
        if info.get("modality") != "text":
            raise UserError("model 'hf' classifies text; this dataset is not text")
        if path is None:
            raise UserError("model 'hf' needs model.path: a local folder saved with save_pretrained")
        model = load_hf(path, n_classes, pretrained, info)
        return HFClassifier(model, info["pad_id"], info.get("sep_id"))
