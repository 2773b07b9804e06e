"""Text datasets tokenised lazily: a Hugging Face tokenizer from a local folder, or a built-in word vocabulary.

Both produce fixed-length id rows `[CLS] text [SEP]` (or `[CLS] premise [SEP] hypothesis [SEP]` for
pairs), padded with `pad_id`; `info` tells the model builder the vocabulary size, length and special ids.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import listing
from earlyreadout.errors import UserError
from earlyreadout.params import Param

TEXT_OPTIONS: dict[str, Param] = {
    "tokenizer": Param(None, "local folder of a Hugging Face tokenizer (usually the model's folder); "
                       "null = a word vocabulary built from the training texts", nullable=True, kind=str, path=True),
    "max_len": Param(128, "tokens per example, including special tokens (longer texts are truncated)", low=4),
    "vocab_size": Param(30000, "size of the built-in word vocabulary (ignored with a tokenizer)", low=8),
}

WORD = re.compile(r"\w+|[^\w\s]")
SPECIALS = ("[PAD]", "[CLS]", "[SEP]", "[UNK]")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model")


class Encoder(Protocol):
    """What a text dataset needs from a tokenizer."""

    def encode(self, text: str, pair: str | None, max_len: int) -> list[int]: ...
    def info(self) -> dict[str, Any]: ...


def words(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens."""
    return WORD.findall(text.lower())


def _truncate_pair(a: list[Any], b: list[Any], budget: int) -> None:
    """Drop tokens from the end of the longer sequence until both fit in `budget` (longest first)."""
    while len(a) + len(b) > budget:
        (a if len(a) >= len(b) else b).pop()


class WordVocabulary:
    """The `size` most frequent training words (ties alphabetical) plus [PAD]=0, [CLS]=1, [SEP]=2, [UNK]=3."""

    def __init__(self, texts: Sequence[str], size: int):
        counts = Counter(w for t in texts for w in words(t))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max(size - len(SPECIALS), 0)]
        self.words = list(SPECIALS) + ranked
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad_id, self.cls_id, self.sep_id, self.unk_id = 0, 1, 2, 3

    def ids(self, text: str) -> list[int]:
        return [self.index.get(w, self.unk_id) for w in words(text)]

    def encode(self, text: str, pair: str | None, max_len: int) -> list[int]:
        a = self.ids(text)
        if pair is None:
            body = [self.cls_id] + a[: max_len - 2] + [self.sep_id]
        else:
            b = self.ids(pair)
            _truncate_pair(a, b, max_len - 3)
            body = [self.cls_id] + a + [self.sep_id] + b + [self.sep_id]
        return body + [self.pad_id] * (max_len - len(body))

    def info(self) -> dict[str, Any]:
        return {"vocab_size": len(self.words), "pad_id": self.pad_id, "cls_id": self.cls_id,
                "sep_id": self.sep_id, "tokenizer": None, "vocabulary": self.words}


class HFTokenizer:
    """A Hugging Face tokenizer read from a local folder (nothing is downloaded)."""

    def __init__(self, path: str):
        folder = Path(path).expanduser()
        advice = "point data.tokenizer at a local folder saved with save_pretrained (e.g. the model's folder)"
        if not folder.is_dir():
            raise UserError(f"tokenizer folder {str(folder)!r} does not exist; {advice}")
        if not any((folder / name).is_file() for name in TOKENIZER_FILES):
            raise UserError(f"tokenizer folder {str(folder)!r} holds no tokenizer files ({', '.join(TOKENIZER_FILES)});"
                            f" it holds: {listing(folder)}; {advice}")
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise UserError("data.tokenizer needs the `transformers` package: pip install transformers") from None
        try:
            self.tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load a tokenizer from {str(folder)!r} ({str(e).splitlines()[0]}); "
                            f"it holds: {listing(folder)}; {advice}") from None
        if self.tok.pad_token_id is None:
            raise UserError(f"the tokenizer in {str(folder)!r} has no padding token")
        self.path = str(folder)

    def encode(self, text: str, pair: str | None, max_len: int) -> list[int]:
        out = self.tok(text, pair, truncation=True, max_length=max_len, padding="max_length")
        return list(out["input_ids"])

    def info(self) -> dict[str, Any]:
        return {"vocab_size": len(self.tok), "pad_id": self.tok.pad_token_id, "cls_id": self.tok.cls_token_id,
                "sep_id": self.tok.sep_token_id, "tokenizer": self.path}


def make_encoder(opts: dict[str, Any], train_texts: Sequence[str]) -> Encoder:
    """The tokenizer the options ask for; the word vocabulary is built from `train_texts` only."""
    if opts["tokenizer"]:
        return HFTokenizer(opts["tokenizer"])
    return WordVocabulary(train_texts, opts["vocab_size"])


class TextDataset(GroupedDataset):
    """A split of texts (or text pairs) tokenised when an example is asked for."""

    def __init__(self, texts: Sequence[str], pairs: Sequence[str] | None, encoder: Encoder, max_len: int,
                 **kwargs: Any):
        kwargs["info"] = {"modality": "text", "max_len": max_len, **encoder.info(), **kwargs.get("info", {})}
        super().__init__(**kwargs)
        if len(texts) != len(self.y) or (pairs is not None and len(pairs) != len(texts)):
            raise ValueError(f"{self.name}/{self.split}: text and label counts differ")
        self.texts, self.pairs = list(texts), (None if pairs is None else list(pairs))
        self.encoder, self.max_len = encoder, max_len

    def get_x(self, i: int) -> torch.Tensor:
        pair = None if self.pairs is None else self.pairs[i]
        return torch.tensor(self.encoder.encode(self.texts[i], pair, self.max_len), dtype=torch.long)
