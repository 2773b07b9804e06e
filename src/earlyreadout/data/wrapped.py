"""Grouped datasets from what users already have: tensors, or any torch `Dataset` whose items are `(x, y)`,
`(x, y, a)` or dicts (`x` / `image` / `input`, `y` / `label`, `a` / `attribute`; an attribute of -1 or None is
unknown). A split whose attributes are unknown anywhere is scored per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.errors import UserError

X_KEYS, Y_KEYS, A_KEYS = ("x", "image", "input", "inputs"), ("y", "label", "labels", "target"), ("a", "attribute",
                                                                                               "attributes", "group")
SPLITS = ("train", "val", "test")


def input_info(x: torch.Tensor) -> dict[str, Any]:
    """The `info` models are built from: images for (C, H, W) inputs, else feature vectors of that shape."""
    return {"modality": "image" if x.dim() == 3 else "features", "shape": tuple(x.shape)}


def item_parts(item: Any, where: str) -> tuple[torch.Tensor, int, int | None]:
    """(input, label, attribute or None) of one dataset item."""
    if isinstance(item, Mapping):
        def pick(keys: Sequence[str]) -> Any:
            return next((item[k] for k in keys if k in item), None)
        x, y, a = pick(X_KEYS), pick(Y_KEYS), pick(A_KEYS)
    elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
        x, y, a = item[0], item[1], item[2] if len(item) == 3 else None
    else:
        raise UserError(f"{where}: items must be (x, y), (x, y, a) or dicts with x and y keys; got {type(item).__name__}")
    if x is None or y is None:
        raise UserError(f"{where}: a dict item needs an input ({', '.join(X_KEYS)}) and a label ({', '.join(Y_KEYS)}); "
                        f"got keys {', '.join(map(str, item))}")
    a = None if a is None or int(a) < 0 else int(a)
    return torch.as_tensor(x), int(y), a


def attribute_tensor(values: Sequence[int | None]) -> torch.Tensor | None:
    """Attribute codes of a split, or None where any is unknown."""
    return None if any(v is None for v in values) or not values else torch.tensor(values, dtype=torch.long)


def names(n: int, given: Sequence[str] | None, what: str) -> list[str]:
    if given is None:
        return [str(i) for i in range(n)]
    if len(given) < n:
        raise UserError(f"{len(given)} {what} names given for codes 0..{n - 1}; give one per code")
    return list(given)


class TorchItems(GroupedDataset):
    """A split over a torch `Dataset`, read item by item (labels and attributes are read once, up front)."""

    def __init__(self, dataset: Dataset, labels: torch.Tensor, attributes: torch.Tensor | None, **kwargs: Any):
        super().__init__(y=labels, a=attributes, **kwargs)
        self.dataset = dataset

    def get_x(self, i: int) -> torch.Tensor:
        return item_parts(self.dataset[i], f"{self.name}/{self.split}")[0]


def from_tensors(splits: Mapping[str, Sequence[torch.Tensor | None]], class_names: Sequence[str] | None = None,
                 attribute_names: Sequence[str] | None = None, name: str = "tensors") -> dict[str, GroupedDataset]:
    """Train / val / test splits from `(x, y)` or `(x, y, a)` tensors per split (`a` None or -1 where unknown)."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise UserError(f"give every split: {', '.join(SPLITS)} (missing {', '.join(missing)})")
    parts = {s: (tuple(splits[s]) + (None,))[:3] for s in SPLITS}
    n_classes = 1 + max(int(p[1].max()) for p in parts.values())
    known = [p[2][p[2] >= 0] for p in parts.values() if p[2] is not None]
    n_attributes = 1 + max((int(a.max()) for a in known if len(a)), default=0)
    out = {}
    for split, (x, y, a) in parts.items():
        a = None if a is None or bool((a < 0).any()) else a
        out[split] = TensorGroupedDataset(x, name=name, split=split, y=y, a=a,
                                          class_names=names(n_classes, class_names, "class"),
                                          attribute_names=names(n_attributes, attribute_names, "attribute"),
                                          info=input_info(x[0]))
    return out


def from_torch(splits: Mapping[str, Dataset], class_names: Sequence[str] | None = None,
               attribute_names: Sequence[str] | None = None, name: str = "torch") -> dict[str, GroupedDataset]:
    """Train / val / test splits from torch `Dataset`s (items as in the module docstring); inputs are read lazily."""
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise UserError(f"give every split: {', '.join(SPLITS)} (missing {', '.join(missing)})")
    empty = [s for s in SPLITS if len(splits[s]) == 0]
    if empty:
        raise UserError(f"split {empty[0]} of {name} is empty; every split needs examples")
    read = {s: [item_parts(splits[s][i], f"{name}/{s}")[1:] for i in range(len(splits[s]))] for s in SPLITS}
    n_classes = 1 + max(y for items in read.values() for y, _ in items)
    n_attributes = 1 + max((a for items in read.values() for _, a in items if a is not None), default=0)
    return {s: TorchItems(splits[s], torch.tensor([y for y, _ in items]), attribute_tensor([a for _, a in items]),
                          name=name, split=s, class_names=names(n_classes, class_names, "class"),
                          attribute_names=names(n_attributes, attribute_names, "attribute"),
                          info=input_info(item_parts(splits[s][0], f"{name}/{s}")[0]))
            for s, items in read.items()}
