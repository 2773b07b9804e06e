"""`colored-mnist`: the 10-class Colored MNIST of LfF and the Feature Sieve, built from your MNIST files."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.files import ROOT_OPTION, listing, split_off
from earlyreadout.data.idx import read_idx
from earlyreadout.data.synthetic import common
from earlyreadout.errors import UserError
from earlyreadout.params import Param

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
LAYOUTS = ("", "MNIST/raw", "mnist", "MNIST")  # the root itself, torchvision's layout, common others


def mnist_file(root: str | None, name: str, dataset: str = "colored-mnist") -> Path:
    """The path of MNIST file `name` (or `name.gz`) under `root` in one of the usual layouts (`dataset`: whose
    files they are, for error messages)."""
    if root is None:
        raise UserError(f"dataset {dataset!r} reads MNIST's IDX files from your disk: pass --data-root PATH "
                        f"(or data.root=PATH) pointing at the folder holding {FILES['train'][0]!r}")
    base = Path(root).expanduser()
    for layout in LAYOUTS:
        for candidate in (base / layout / name, base / layout / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise UserError(f"{dataset}: no {name!r} (or {name}.gz) under {str(base)!r} or its "
                    f"{', '.join(LAYOUTS[1:])} folders; the root holds: {listing(base) if base.is_dir() else '(nothing)'}")


def read_mnist(root: str | None, split: str, dataset: str = "colored-mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [0, 1] of shape (N, 28, 28), labels) of MNIST's `train` or `test` release files."""
    images_name, labels_name = FILES[split]
    images = read_idx(mnist_file(root, images_name, dataset))
    labels = read_idx(mnist_file(root, labels_name, dataset))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UserError(f"{dataset}: {images_name} holds shape {tuple(images.shape)} and {labels_name} "
                        f"{tuple(labels.shape)}; expected (N, H, W) images and N labels")
    return images.float() / 255.0, labels.long()


def tinted(ink: torch.Tensor, y: torch.Tensor, a: torch.Tensor, jitter: torch.Tensor, split: str,
           attribute_shift: int = 0) -> TensorGroupedDataset:
    """The split with every digit's strokes in colour `a + attribute_shift` (of 10) plus its own colour noise."""
    a = common.shift_attributes(a, attribute_shift, 10)
    colors = (common.palette(10)[a] + jitter).clamp(0, 1)[:, :, None, None]
    x = (ink[:, None] * colors).float().contiguous()
    data = TensorGroupedDataset(x=x, name="colored-mnist", split=split, y=y, a=a,
                                class_names=[str(d) for d in range(10)],
                                attribute_names=[f"color{c}" for c in range(10)],
                                info={"modality": "image", "shape": tuple(x.shape[1:])})
    data.counterfactual = functools.partial(tinted, ink, y, a, jitter, split, 1)
    return data


class ColoredMNIST:
    """Colored MNIST as LfF (Nam et al. 2020) and the Feature Sieve define it: each digit's strokes take one
    of 10 colours; in train the colour is its class's with probability `correlation` (LfF: 0.95, 0.98, 0.99,
    0.995) and another, uniformly, otherwise; in val and test it is uniform, independent of the class (100
    groups). Val is a seeded `val_fraction` of MNIST's train files; test is MNIST's t10k files. The papers
    report the accuracy on this unbiased test set (the `average` accuracy here) beside which worst-group
    accuracy says more."""

    default_model: ClassVar[str] = "small-cnn"
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        "correlation": Param(0.95, "probability that a train digit has its class's colour", low=0.0, high=1.0),
        "color_jitter": Param(0.1, "std of per-image colour noise", low=0.0),
        "val_fraction": Param(0.1, "fraction of MNIST's train files held out for validation", low=0.0, high=1.0,
                              open_low=True, open_high=True),
        "n_train": Param(None, "use only this many training images (null = all)", low=1, nullable=True, kind=int),
        "seed": Param(0, "seed of the validation carve-out and of the colours", low=0),
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def model_input(self) -> tuple[dict[str, Any], int]:
        """(model info, classes), known before any file is read."""
        return {"modality": "image", "shape": (3, 28, 28)}, 10

    def splits(self) -> dict[str, GroupedDataset]:
        o = self.o
        images, labels = read_mnist(o["root"], "train")
        kept, held = split_off(len(labels), o["val_fraction"], o["seed"])
        if o["n_train"] is not None:
            kept = kept[: o["n_train"]]
        test_images, test_labels = read_mnist(o["root"], "test")
        parts = {"train": (images[kept], labels[kept]), "val": (images[held], labels[held]),
                 "test": (test_images, test_labels)}
        out = {}
        for split, (ink, y) in parts.items():
            gen = common.split_generator(o["seed"], split)
            if split == "train":
                other = (y + torch.randint(1, 10, (len(y),), generator=gen)) % 10
                a = torch.where(torch.rand(len(y), generator=gen) < o["correlation"], y, other)
            else:
                a = torch.randint(10, (len(y),), generator=gen)
            jitter = o["color_jitter"] * torch.randn(len(y), 3, generator=gen)
            out[split] = tinted(ink, y, a, jitter, split)
        return out
