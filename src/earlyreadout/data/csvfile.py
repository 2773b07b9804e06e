"""`csv`: any grouped dataset described by one metadata CSV (images or text) — for your own data."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, read_table, split_codes
from earlyreadout.data.images import IMAGE_OPTIONS, image_split
from earlyreadout.data.text import TEXT_OPTIONS, TextDataset, make_encoder
from earlyreadout.errors import UserError
from earlyreadout.params import Param


def codes(values: pd.Series, path: Path, option: str, blank_ok: bool = False) -> tuple[torch.Tensor, list[str]]:
    """Integer codes and names of a label/attribute column: integers 0..K-1 are kept, other values sorted.
    An empty cell is -1 where `blank_ok` (attributes known on some rows only), else an error naming its line
    of the CSV at `path` and the column's option."""
    blank = values.isna()
    if blank.any() and not blank_ok:
        line = int(blank.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header line
        raise UserError(f"csv: column {values.name!r} ({option}) of {str(path)!r} has an empty value on line "
                        f"{line}; fill in every label (or drop those rows)")
    known = values[~blank]
    uniques = sorted(known.unique().tolist(), key=lambda v: (str(type(v)), v))
    if all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in uniques) and uniques \
            and min(uniques) >= 0:  # (a column with blanks reads as floats)
        names = [str(v) for v in range(int(max(uniques)) + 1)]
        lookup = {v: int(v) for v in uniques}
    else:
        lookup = {v: i for i, v in enumerate(uniques)}
        names = [str(v) for v in uniques]
    return torch.tensor(values.map(lookup).fillna(-1).to_numpy(), dtype=torch.long), names


def split_attributes(a: torch.Tensor | None, split: str, path: Path) -> torch.Tensor | None:
    """A split's attribute codes, or None where some of its rows have none (its metrics are then per class: a
    group needs every row's attribute). A split blank only in part is said once, as a warning."""
    if a is None or bool((a >= 0).all()):
        return a
    if bool((a >= 0).any()):
        warnings.warn(f"csv: {int((a < 0).sum())} of {len(a)} {split} rows of {str(path)!r} have no attribute, so "
                      f"{split} is scored per class; fill in its attribute column for group metrics", stacklevel=2)
    return None


class MetadataCSV:
    """One CSV with an input column (an image path relative to the CSV, or the text itself), a label, an
    optional spurious attribute and a split column (SubpopBench's `id,filename,split,y,a` by default).
    Labels/attributes that are integers 0..K-1 keep their codes; other values (e.g. strings) are sorted."""

    default_model: ClassVar[str] = "resnet"
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        "file": Param("metadata.csv", "the metadata CSV, relative to root (or root may be the CSV itself)"),
        "modality": Param("image", "what the input column holds", choices=("image", "text")),
        "input_column": Param("filename", "image path (relative to the CSV's folder) or text"),
        "pair_column": Param(None, "second text of a pair (e.g. the hypothesis); text only", nullable=True, kind=str),
        "label_column": Param("y", "class label column"),
        "attribute_column": Param("a", "spurious attribute column; null = no attribute labels; cells may be blank "
                                  "(e.g. on all of train): a split with blanks is scored per class", nullable=True,
                                  kind=str),
        "split_column": Param("split", "split column"),
        "split_codes": Param({"train": 0, "val": 1, "test": 2}, "value of the split column for each split",
                             kind=dict),
        "center_crop": Param(None, "centre-crop this many pixels before resizing (CelebA style); null = "
                             "resize then centre-crop", nullable=True, kind=int, low=1),
        **IMAGE_OPTIONS,
        **TEXT_OPTIONS,
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def splits(self) -> dict[str, GroupedDataset]:
        o = self.o
        if o["root"] is None:
            raise UserError("dataset 'csv' needs --data-root PATH: the folder holding the metadata CSV (or the CSV)")
        root = Path(o["root"]).expanduser()
        path = root if root.is_file() else root / o["file"]
        if not root.exists():
            raise UserError(f"csv: data root {str(root)!r} does not exist")
        columns = {o[key]: f"data.{key}" for key in ("input_column", "label_column", "split_column", "attribute_column",
                                                     "pair_column") if o[key] is not None}
        meta = read_table(path, "csv", columns)
        split = split_codes(meta[o["split_column"]], o["split_codes"], path, o["split_column"], "csv")
        y, class_names = codes(meta[o["label_column"]], path, "data.label_column")
        a, attribute_names = (None, None)
        if o["attribute_column"] is not None:
            a, attribute_names = codes(meta[o["attribute_column"]], path, "data.attribute_column", blank_ok=True)
        inputs = meta[o["input_column"]].fillna("").astype(str).tolist()
        pairs = None if o["pair_column"] is None else meta[o["pair_column"]].fillna("").astype(str).tolist()
        encoder = None
        if o["modality"] == "text":
            train_text = [t for t, s in zip(inputs, split) if s == "train"]
            if pairs is not None:
                train_text += [t for t, s in zip(pairs, split) if s == "train"]
            encoder = make_encoder(o, train_text)
        out = {}
        for name in ("train", "val", "test"):
            rows = (split == name).to_numpy().nonzero()[0].tolist()
            if not rows:
                raise UserError(f"csv: no {name} rows in {str(path)!r} (column {o['split_column']!r} must give "
                                f"every split examples; split codes {o['split_codes']})")
            ys, as_ = y[rows], split_attributes(None if a is None else a[rows], name, path)
            if encoder is None:
                out[name] = image_split("csv", name, [path.parent / inputs[i] for i in rows], ys, as_, class_names,
                                        attribute_names, o, center_crop=o["center_crop"])
            else:
                out[name] = TextDataset([inputs[i] for i in rows], None if pairs is None else [pairs[i] for i in rows],
                                        encoder, o["max_len"], name="csv", split=name, y=ys, a=as_,
                                        class_names=class_names, attribute_names=attribute_names)
        return out
