"""The grouped-dataset interface every dataset implements: examples with label, attribute and group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import Dataset


class GroupedDataset(Dataset):
    """One split of a dataset; example `i` has label `y[i]`, spurious attribute `a[i]` and group `g[i]`.

    The group of (y, a) is `y * n_attributes + a`. Datasets without attribute labels have `a = None`;
    their groups are then the classes, so worst-group metrics become worst-class metrics.
    Subclasses implement `get_x(i)`; in-memory datasets also return all inputs from `tensors()` so the
    loader can batch by slicing, and datasets that read a batch faster at once say so (`reads_batches`).
    A dataset may also set `eval_groups = (names, membership)`, extra evaluation groups that may overlap
    (`membership[i, k]`: example i belongs to group k, e.g. WILDS' CivilComments identity groups); they
    are reported besides the partition and never used in training. A generated dataset that can re-render
    its examples with another attribute sets `counterfactual`: a function returning the same split, example
    for example, with only the attribute changed (`a` holds the new one); measures of reliance read it.
    """

    eval_groups: tuple[list[str], torch.Tensor] | None = None
    counterfactual: Callable[[], GroupedDataset] | None = None

    def __init__(
        self,
        name: str,
        split: str,
        y: torch.Tensor,
        a: torch.Tensor | None,
        class_names: list[str],
        attribute_names: list[str] | None,
        info: dict[str, Any],
    ):
        self.name = name
        self.split = split
        self.y = y.long()
        self.a = None if a is None else a.long()
        self.class_names = list(class_names)
        self.attribute_names = list(attribute_names or [])
        self.info = dict(info)
        if self.a is not None and len(self.a) != len(self.y):
            raise ValueError(f"{name}/{split}: {len(self.y)} labels but {len(self.a)} attributes")

    # --- what subclasses provide -------------------------------------------------------------------
    def get_x(self, i: int) -> torch.Tensor:
        raise NotImplementedError

    def tensors(self) -> torch.Tensor | None:
        """All inputs as one tensor when held in memory, else None (inputs are loaded lazily)."""
        return None

    def reads_batches(self) -> bool:
        """Whether `get_batch` is cheaper than `get_x` one by one (e.g. rows of a memory-mapped cache); the
        loader then reads each batch at once instead of going through a DataLoader without workers."""
        return False

    def get_batch(self, idx: torch.Tensor) -> torch.Tensor:
        """The inputs of examples `idx`, stacked."""
        return torch.stack([self.get_x(int(i)) for i in idx])

    # --- derived -------------------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_attributes(self) -> bool:
        return self.a is not None

    @property
    def n_attributes(self) -> int:
        return len(self.attribute_names) if self.has_attributes else 1

    @property
    def n_groups(self) -> int:
        return self.n_classes * self.n_attributes

    @property
    def g(self) -> torch.Tensor:
        if self.a is None:
            return self.y.clone()
        return self.y * self.n_attributes + self.a

    @property
    def group_names(self) -> list[str]:
        if self.a is None:
            return [f"y={c}" for c in self.class_names]
        return [f"y={c}, a={at}" for c in self.class_names for at in self.attribute_names]

    def group_of(self, g: int) -> tuple[int, int | None]:
        """(label, attribute) of group index `g`."""
        if self.a is None:
            return g, None
        return g // self.n_attributes, g % self.n_attributes

    def group_counts(self) -> torch.Tensor:
        return torch.bincount(self.g, minlength=self.n_groups)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {
            "x": self.get_x(i),
            "y": self.y[i],
            "a": self.a[i] if self.a is not None else torch.tensor(-1),
            "g": self.g[i],
            "idx": torch.tensor(i),
        }

    def describe(self) -> str:
        counts = self.group_counts().tolist()
        parts = ", ".join(f"{n}: {c}" for n, c in zip(self.group_names, counts))
        return f"{self.name}/{self.split}: {len(self)} examples ({parts})"


class TensorGroupedDataset(GroupedDataset):
    """A grouped dataset whose inputs are one tensor in memory (the built-in benchmarks)."""

    def __init__(self, x: torch.Tensor, **kwargs: Any):
        super().__init__(**kwargs)
        if len(x) != len(self.y):
            raise ValueError(f"{self.name}/{self.split}: {len(x)} inputs but {len(self.y)} labels")
        self.x = x

    def get_x(self, i: int) -> torch.Tensor:
        return self.x[i]

    def tensors(self) -> torch.Tensor:
        return self.x
