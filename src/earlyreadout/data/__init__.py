"""Datasets: the grouped-dataset interface, the registry, and `load_splits` from a data config."""

from __future__ import annotations

from typing import Any

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.loader import BatchLoader
from earlyreadout.data.synthetic.colored_digits import ColoredDigits
from earlyreadout.data.synthetic.dominoes import Dominoes
from earlyreadout.data.synthetic.spurious_text import SpuriousText
from earlyreadout.registry import Registry

DATASETS: Registry[Any] = Registry("dataset")
DATASETS.register("colored-digits")(ColoredDigits)
DATASETS.register("dominoes")(Dominoes)
DATASETS.register("spurious-text")(SpuriousText)


def load_splits(name: str, options: dict[str, Any]) -> dict[str, GroupedDataset]:
    """The train / val / test splits of dataset `name` built with validated `options`."""
    return DATASETS.get(name)(**options).splits()


__all__ = ["DATASETS", "BatchLoader", "GroupedDataset", "TensorGroupedDataset", "load_splits"]
