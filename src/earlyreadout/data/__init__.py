"""Datasets: the grouped-dataset interface, the registry, and `load_splits` from a data config."""

from __future__ import annotations

from typing import Any

from earlyreadout.data.bar import BAR
from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.celeba import CelebA
from earlyreadout.data.cifar_mnist import CifarMnist
from earlyreadout.data.civilcomments import CivilComments
from earlyreadout.data.colored_mnist import ColoredMNIST
from earlyreadout.data.csvfile import MetadataCSV
from earlyreadout.data.loader import BatchLoader
from earlyreadout.data.multinli import MultiNLI
from earlyreadout.data.nico import NICO
from earlyreadout.data.synthetic.colored_digits import ColoredDigits
from earlyreadout.data.synthetic.dominoes import Dominoes
from earlyreadout.data.synthetic.shapes_on_texture import ShapesOnTexture
from earlyreadout.data.synthetic.small_digits import SmallDigits
from earlyreadout.data.synthetic.spurious_text import SpuriousText
from earlyreadout.data.waterbirds import Waterbirds
from earlyreadout.registry import Registry

DATASETS: Registry[Any] = Registry("dataset")
DATASETS.register("colored-digits")(ColoredDigits)
DATASETS.register("dominoes")(Dominoes)
DATASETS.register("shapes-on-texture")(ShapesOnTexture)
DATASETS.register("small-digits")(SmallDigits)
DATASETS.register("spurious-text")(SpuriousText)
DATASETS.register("waterbirds")(Waterbirds)
DATASETS.register("celeba")(CelebA)
DATASETS.register("multinli")(MultiNLI)
DATASETS.register("civilcomments")(CivilComments)
DATASETS.register("bar")(BAR)
DATASETS.register("nico")(NICO)
DATASETS.register("csv")(MetadataCSV)
DATASETS.register("colored-mnist")(ColoredMNIST)
DATASETS.register("cifar-mnist")(CifarMnist)


def load_splits(name: str, options: dict[str, Any]) -> dict[str, GroupedDataset]:
    """The train / val / test splits of dataset `name` built with validated `options`."""
    return DATASETS.get(name)(**options).splits()


__all__ = ["DATASETS", "BatchLoader", "GroupedDataset", "TensorGroupedDataset", "load_splits"]
