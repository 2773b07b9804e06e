"""`cifar-mnist`: the MNIST-CIFAR dominoes of Shah et al. 2020 (and the Feature Sieve's and DFR's papers),
built from your local MNIST IDX files and CIFAR-10's binary release.

Each image stacks an MNIST digit (the simple, spurious part, on top) above a CIFAR-10 image (the core part,
below); the label is the CIFAR class. Nothing is downloaded and CIFAR-10's Python (pickle) release is never
read: pickles run code when loaded.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.colored_mnist import read_mnist
from earlyreadout.data.files import ROOT_OPTION, listing, split_off
from earlyreadout.data.synthetic import common
from earlyreadout.errors import UserError
from earlyreadout.params import Param

NAME = "cifar-mnist"
CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR_LAYOUTS = ("cifar-10-batches-bin", "")  # the release's own folder, or the root itself
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue 32x32 planes


def cifar_folder(root: str | None) -> Path:
    """The folder under `root` that holds CIFAR-10's binary batches; one line naming the fix otherwise."""
    if root is None:
        raise UserError(f"dataset {NAME!r} reads CIFAR-10's binary release and MNIST's IDX files from your disk: "
                        "pass --data-root PATH (or data.root=PATH) pointing at the folder holding both")
    base = Path(root).expanduser()
    for layout in CIFAR_LAYOUTS:
        if (base / layout / CIFAR_FILES["test"][0]).is_file():
            return base / layout
    if (base / "cifar-10-batches-py").is_dir() or (base / "data_batch_1").is_file():
        raise UserError(f"{NAME}: {str(base)!r} holds CIFAR-10's Python (pickle) release, which is never read; "
                        "download the binary version (cifar-10-binary.tar.gz) and extract it there")
    raise UserError(f"{NAME}: no {CIFAR_FILES['test'][0]!r} under {str(base)!r} or its {CIFAR_LAYOUTS[0]} folder; "
                    f"extract cifar-10-binary.tar.gz there (the root holds: "
                    f"{listing(base) if base.is_dir() else '(nothing)'})")


def read_cifar(root: str | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [0, 1] of shape (N, 3, 32, 32), labels) of CIFAR-10's binary `train` or `test` batches."""
    folder = cifar_folder(root)
    chunks = []
    for name in CIFAR_FILES[split]:
        path = folder / name
        if not path.is_file():
            raise UserError(f"{NAME}: {str(path)!r} is missing; the binary release has "
                            f"{', '.join(CIFAR_FILES['train'] + CIFAR_FILES['test'])}")
        data = np.fromfile(path, dtype=np.uint8)
        if data.size == 0 or data.size % RECORD:
            raise UserError(f"{NAME}: {str(path)!r} holds {data.size} bytes, not a whole number of {RECORD}-byte "
                            "records; extract it again from cifar-10-binary.tar.gz")
        chunks.append(data.reshape(-1, RECORD))
    records = torch.from_numpy(np.concatenate(chunks))
    return records[:, 1:].reshape(-1, 3, 32, 32).float() / 255.0, records[:, 0].long()


def digit_tiles(ink: torch.Tensor) -> torch.Tensor:
    """MNIST digits (N, 28, 28) as 3-channel 32x32 tiles, padded by 2 pixels on every side."""
    return F.pad(ink, (2, 2, 2, 2))[:, None].expand(-1, 3, -1, -1)


def stacked(pools: list[torch.Tensor], picks: torch.Tensor, core: torch.Tensor, y: torch.Tensor, a: torch.Tensor,
            split: str, names: tuple[list[str], list[str]], attribute_shift: int = 0) -> TensorGroupedDataset:
    """The split with the MNIST digit of attribute `a + attribute_shift` (its `picks`-th image, cyclically)
    stacked above each CIFAR image `core`."""
    a = common.shift_attributes(a, attribute_shift, 2)
    top = torch.stack([pools[int(ai)][int(k) % len(pools[int(ai)])] for ai, k in zip(a, picks)]) if len(a) else \
        torch.zeros(0, 28, 28)
    x = torch.cat([digit_tiles(top), core], dim=2).contiguous()
    data = TensorGroupedDataset(x=x, name=NAME, split=split, y=y, a=a, class_names=names[0], attribute_names=names[1],
                                info={"modality": "image", "shape": (3, 64, 32), "core_region": (32, 64, 0, 32),
                                      "spurious_region": (0, 32, 0, 32)})
    data.counterfactual = functools.partial(stacked, pools, picks, core, y, a, split, names, 1)
    return data


class CifarMnist:
    """MNIST-CIFAR dominoes: label = which of two CIFAR-10 classes the bottom image shows; attribute = which of
    two MNIST digits is on top. In train the digit agrees with the class with probability `correlation`; in
    val and test it is drawn uniformly, independent of the class (4 groups). Val is a seeded `val_fraction` of
    the train batches; test is CIFAR-10's test batch above MNIST's t10k digits. The papers report test accuracy
    on this unbiased split (`average` here) beside which worst-group accuracy says more."""

    default_model: ClassVar[str] = "small-cnn"
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        "correlation": Param(0.95, "probability that a train image's digit is its class's", low=0.0, high=1.0),
        "classes": Param("automobile,truck", "the two CIFAR-10 classes, comma-separated (label 0, label 1)",
                         check=lambda v: None if len(_names(v)) == 2 and set(_names(v)) <= set(CIFAR_CLASSES)
                         else f"two of {', '.join(CIFAR_CLASSES)}"),
        "digits": Param("0,1", "the two MNIST digits, comma-separated (attribute 0, attribute 1)",
                        check=lambda v: None if len(_names(v)) == 2 and all(d in "0123456789" and len(d) == 1
                                                                             for d in _names(v)) else "two digits 0-9"),
        "val_fraction": Param(0.1, "fraction of the train batches held out for validation", low=0.0, high=1.0,
                              open_low=True, open_high=True),
        "n_train": Param(None, "use only this many training images (null = all)", low=1, nullable=True, kind=int),
        "seed": Param(0, "seed of the validation carve-out and of the digits' draws", low=0),
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def model_input(self) -> tuple[dict[str, Any], int]:
        """(model info, classes), known before any file is read."""
        return {"modality": "image", "shape": (3, 64, 32)}, 2

    def splits(self) -> dict[str, GroupedDataset]:
        o = self.o
        classes = [CIFAR_CLASSES.index(c) for c in _names(o["classes"])]
        digits = [int(d) for d in _names(o["digits"])]
        parts = {}
        for release in ("train", "test"):
            images, labels = read_cifar(o["root"], release)
            keep = torch.isin(labels, torch.tensor(classes)).nonzero().flatten()
            ink, numbers = read_mnist(o["root"], release, NAME)
            parts[release] = (images[keep], (labels[keep] == classes[1]).long(),
                              [ink[numbers == d] for d in digits])
        images, y, pools = parts["train"]
        kept, held = split_off(len(y), o["val_fraction"], o["seed"])
        if o["n_train"] is not None:
            kept = kept[: o["n_train"]]
        chosen = {"train": (images[kept], y[kept], pools), "val": (images[held], y[held], pools), "test": parts["test"]}
        names = ([*_names(o["classes"])], [f"digit {d}" for d in digits])
        return {split: self._split(split, core, labels, tiles, names) for split, (core, labels, tiles) in chosen.items()}

    def _split(self, split: str, core: torch.Tensor, y: torch.Tensor, pools: list[torch.Tensor],
               names: tuple[list[str], list[str]]) -> TensorGroupedDataset:
        if any(len(p) == 0 for p in pools):
            raise UserError(f"{NAME}: the MNIST {'train' if split != 'test' else 't10k'} files hold no image of "
                            f"digit(s) {self.o['digits']}; choose data.digits that the files have")
        gen = common.split_generator(self.o["seed"], split)
        if split == "train":
            a = torch.where(torch.rand(len(y), generator=gen) < self.o["correlation"], y, 1 - y)
        else:
            a = torch.randint(2, (len(y),), generator=gen)
        picks = torch.randint(2**31 - 1, (len(y),), generator=gen)
        return stacked(pools, picks, core, y, a, split, names)


def _names(text: Any) -> list[str]:
    return [t.strip() for t in str(text).split(",") if t.strip()]
