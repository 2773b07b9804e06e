"""`spurious-text`: short sentences whose sentiment words set the label and a negation word is a shortcut."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.synthetic import common
from earlyreadout.errors import ConfigError
from earlyreadout.params import Param

POSITIVE = ("good", "great", "excellent", "wonderful", "superb", "lovely", "brilliant", "pleasant")
NEGATIVE = ("bad", "awful", "terrible", "poor", "boring", "dreadful", "weak", "horrible")
NEGATION = ("no", "never", "nothing", "nobody")
FILLER = (
    "the", "a", "movie", "film", "plot", "actor", "was", "is", "and", "it", "story", "this", "really",
    "quite", "scene", "music", "ending", "cast", "of", "with", "director", "script", "very", "at", "time",
)
CONTRAST = ("but",)
SPECIALS = ("[PAD]", "[CLS]", "[UNK]")


class Vocabulary:
    """Whitespace tokenizer over a fixed word list; id 0 pads, id 1 is the leading [CLS]."""

    def __init__(self, words: tuple[str, ...]):
        self.words = list(SPECIALS) + list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.pad_id, self.cls_id, self.unk_id = 0, 1, 2

    def encode(self, text: str, max_len: int) -> list[int]:
        ids = [self.cls_id] + [self.index.get(w, self.unk_id) for w in text.lower().split()]
        ids = ids[:max_len]
        return ids + [self.pad_id] * (max_len - len(ids))

    def decode(self, ids: list[int]) -> list[str]:
        return [self.words[i] for i in ids if i != self.pad_id]


VOCAB = Vocabulary(POSITIVE + NEGATIVE + NEGATION + FILLER + CONTRAST)


class SpuriousText(common.GeneratedBenchmark):
    """Short sentences whose sentiment sets the label, and a negation word that is a shortcut.

    `core="majority"`: filler words with `sentiment_words` sentiment words in random order; the majority
    sets the label. `core="contrast"`: two clauses joined by "but", each with one sentiment word; the
    label is the sentiment of the clause after "but" (the first clause's is random), so the core feature
    needs word order, not word counts. Label 1 = positive. The attribute is "contains a negation word" (`no`, `never`, `nothing`,
    `nobody`), which in train accompanies negative sentences with probability `correlation`, as
    negation accompanies contradiction in MultiNLI. The negation words never change the label.
    """

    default_model: ClassVar[str] = "text-transformer"
    options: ClassVar[dict[str, Param]] = {
        **common.COMMON_OPTIONS,
        "length": Param(12, "words per sentence", low=5),
        "sentiment_words": Param(3, "sentiment words per sentence (odd, the majority sets the label)", low=1),
        "core": Param("contrast", "how the label is written: majority of sentiment words, or the clause "
                      "after 'but' (order-dependent, harder)", choices=("majority", "contrast")),
    }

    def __init__(self, **opts: Any):
        super().__init__(**opts)
        if opts["sentiment_words"] % 2 == 0:
            raise ConfigError("spurious-text: 'sentiment_words' must be odd so a majority exists")

    def sentences(self, split: str) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        o = self.o
        gen = common.split_generator(o["seed"], split)
        n, k, length = o[f"n_{split}"], o["sentiment_words"], o["length"]
        # attribute 1 (negation) is aligned with label 0 (negative): store it flipped, then unflip
        y, aligned = common.split_groups(split, n, 2, 2, o["correlation"], o["eval_correlation"], gen)
        a = 1 - aligned
        texts = []
        if o["core"] == "contrast":
            return [self.contrast_sentence(yi, ai, gen) for yi, ai in zip(y.tolist(), a.tolist())], y, a
        for yi, ai in zip(y.tolist(), a.tolist()):
            n_major = k // 2 + 1 + int(torch.randint(k - k // 2, (1,), generator=gen))
            major, minor = (POSITIVE, NEGATIVE) if yi == 1 else (NEGATIVE, POSITIVE)
            words = [major[int(torch.randint(len(major), (1,), generator=gen))] for _ in range(n_major)]
            words += [minor[int(torch.randint(len(minor), (1,), generator=gen))] for _ in range(k - n_major)]
            if ai == 1:
                words.append(NEGATION[int(torch.randint(len(NEGATION), (1,), generator=gen))])
            while len(words) < length:
                words.append(FILLER[int(torch.randint(len(FILLER), (1,), generator=gen))])
            order = torch.randperm(len(words), generator=gen).tolist()
            texts.append(" ".join(words[i] for i in order))
        return texts, y, a

    def contrast_sentence(self, y: int, a: int, gen: torch.Generator) -> str:
        """'<clause with a random sentiment> but <clause with the label's sentiment>' (+ a negation if a)."""

        def pick(words: tuple[str, ...]) -> str:
            return words[int(torch.randint(len(words), (1,), generator=gen))]

        n_fill = self.o["length"] - 3 - a
        first = [pick(POSITIVE if int(torch.randint(2, (1,), generator=gen)) else NEGATIVE)]
        second = [pick(POSITIVE if y == 1 else NEGATIVE)]
        first += [pick(FILLER) for _ in range(n_fill // 2)]
        second += [pick(FILLER) for _ in range(n_fill - n_fill // 2)]
        if a == 1:
            (first if int(torch.randint(2, (1,), generator=gen)) else second).append(pick(NEGATION))
        first = [first[i] for i in torch.randperm(len(first), generator=gen).tolist()]
        second = [second[i] for i in torch.randperm(len(second), generator=gen).tolist()]
        return " ".join(first + ["but"] + second)

    def make(self, split: str) -> GroupedDataset:
        texts, y, a = self.sentences(split)
        max_len = self.o["length"] + 1
        x = torch.tensor([VOCAB.encode(t, max_len) for t in texts], dtype=torch.long)
        return TensorGroupedDataset(
            x=x, name="spurious-text", split=split, y=y, a=a, class_names=["negative", "positive"],
            attribute_names=["no negation", "negation"],
            info={"modality": "text", "vocab_size": len(VOCAB.words), "max_len": max_len,
                  "pad_id": VOCAB.pad_id, "vocabulary": VOCAB.words, "spurious_tokens": list(NEGATION)},
        )
