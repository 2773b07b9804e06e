"""`multinli`: natural-language inference where a negation word in the hypothesis is the shortcut."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, find_dataset_dir, read_table, require_file, split_codes
from earlyreadout.data.text import TEXT_OPTIONS, TextDataset, make_encoder
from earlyreadout.errors import UserError
from earlyreadout.params import Param

LABELS = ("contradiction", "entailment", "neutral")  # group_DRO's label codes 0, 1, 2
JSONL = ("multinli_1.0_train.jsonl", "multinli_1.0_dev_matched.jsonl", "multinli_1.0_dev_mismatched.jsonl")
LAYOUTS = ("multinli", "multinli_1.0", "glue_data/MNLI", "data")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def read_pairs(folder: Path) -> list[tuple[str, str, str]]:
    """(premise, hypothesis, gold_label) of the three jsonl files concatenated, rows labelled '-' dropped.

    Its position in this list is the row index `metadata_random.csv` refers to.
    """
    text_dir = next((d for d in (folder, folder / "multinli_1.0") if (d / JSONL[0]).is_file()), folder)
    pairs = []
    for name in JSONL:
        path = require_file(text_dir / name, "multinli", "raw text file")
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    label, premise, hypothesis = row["gold_label"], row["sentence1"], row["sentence2"]
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise UserError(f"multinli: line {n} of {str(path)!r} is not a MultiNLI record ({e})") from None
                if label != "-":
                    pairs.append((premise, hypothesis, label))
    return pairs


class MultiNLI:
    """MultiNLI (Williams et al. 2018) with group_DRO's metadata: label (contradiction 0, entailment 1,
    neutral 2) x negation in the hypothesis, six groups `2*y + negation`, the random 50/20/30 split.

    Reads the raw jsonl text and `metadata_random.csv` only; the cached feature pickles of the public
    loaders are never opened. The attribute is the metadata's `sentence2_has_negation` (1 when the
    hypothesis, punctuation stripped and lower-cased, contains nobody / no / never / nothing).
    """

    default_model: ClassVar[str] = "hf"
    published_model: ClassVar[str] = "a pretrained BERT: --model hf model.path=DIR data.tokenizer=DIR (configs/multinli-teacher.yaml)"
    fallback_model: ClassVar[str] = "text-transformer"  # trains without local pretrained files
    options: ClassVar[dict[str, Param]] = {"root": ROOT_OPTION, **TEXT_OPTIONS}

    def __init__(self, **opts: Any):
        self.o = opts

    def splits(self) -> dict[str, GroupedDataset]:
        folder = find_dataset_dir(self.o["root"], "multinli", "metadata_random.csv", LAYOUTS)
        path = folder / "metadata_random.csv"
        meta = read_table(path, "multinli", ["gold_label", "sentence2_has_negation", "split"], index_col=0)
        pairs = read_pairs(folder)
        if len(meta) and int(meta.index.max()) >= len(pairs):
            raise UserError(f"multinli: {str(path)!r} refers to row {int(meta.index.max())} but the jsonl files "
                            f"hold {len(pairs)} labelled pairs; use the multinli_1.0 release files")
        for idx, label in zip(meta.index[:1000], meta["gold_label"][:1000]):
            if LABELS.index(pairs[idx][2]) != int(label):
                raise UserError(f"multinli: row {idx} of {str(path)!r} has gold_label {label} but the text says "
                                f"{pairs[idx][2]!r}; the metadata and jsonl files do not belong together")
        split = split_codes(meta["split"], SPLIT_CODES, path, "split", "multinli")
        train_rows = meta.index[split == "train"]
        encoder = make_encoder(self.o, [pairs[i][0] + " " + pairs[i][1] for i in train_rows])
        out = {}
        for name in SPLIT_CODES:
            rows = meta[split == name]
            chosen = [pairs[i] for i in rows.index]
            a = torch.tensor(rows["sentence2_has_negation"].to_numpy())
            out[name] = TextDataset(
                [p for p, _, _ in chosen], [h for _, h, _ in chosen], encoder, self.o["max_len"],
                name="multinli", split=name, y=torch.tensor(rows["gold_label"].to_numpy()), a=a,
                class_names=list(LABELS), attribute_names=["no negation", "negation"])
        return out
