"""Shared pieces of the generated benchmarks: group sampling, digit sources, rendering."""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from earlyreadout.data.base import GroupedDataset
from earlyreadout.params import Param

SPLITS = ("train", "val", "test")

COMMON_OPTIONS: dict[str, Param] = {
    "seed": Param(0, "seed of the generated data (independent of the training seed)", low=0),
    "correlation": Param(
        0.97, "probability that the spurious attribute agrees with the label in train", low=0.0, high=1.0
    ),
    "eval_correlation": Param(
        None, "attribute/label agreement in val and test; null = group-balanced", low=0.0, high=1.0,
        nullable=True, kind=float,
    ),
    "n_train": Param(6000, "training examples", low=1),
    "n_val": Param(1200, "validation examples", low=1),
    "n_test": Param(2400, "test examples", low=1),
}


class GeneratedBenchmark:
    """Base of the built-in benchmarks: validated options in, three generated splits out.

    Each split draws from its own generator, so `train_only_options` change the training split alone:
    runs that differ only in them are evaluated on identical val and test data.
    """

    train_only_options: ClassVar[tuple[str, ...]] = ("correlation", "n_train")
    # whether `make` can render a split with every attribute shifted (`attribute_shift`), all else the same
    swaps_attribute: ClassVar[bool] = False

    def __init__(self, **opts: Any):
        self.o = opts

    def splits(self) -> dict[str, GroupedDataset]:
        out = {s: self.make(s) for s in SPLITS}
        if self.swaps_attribute:
            for s, data in out.items():
                data.counterfactual = functools.partial(self.make, s, 1)
        return out

    def make(self, split: str, attribute_shift: int = 0) -> GroupedDataset:
        """Generate one split from the options (deterministic in the data seed); with `attribute_shift` k
        (where `swaps_attribute`), the same examples with attribute `(a + k) % n_attributes`."""
        raise NotImplementedError


def shift_attributes(a: torch.Tensor, shift: int, n_attributes: int) -> torch.Tensor:
    """Every attribute moved by `shift` values, cyclically: a counterfactual rendering's attributes."""
    return (a + shift) % n_attributes


def split_generator(seed: int, split: str) -> torch.Generator:
    """An independent generator per (data seed, split)."""
    return torch.Generator().manual_seed(seed * 7919 + SPLITS.index(split) + 1)


def correlated_groups(
    n: int, n_classes: int, n_attributes: int, correlation: float, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced labels; attribute equals `y % n_attributes` with prob `correlation`, else another value."""
    y = torch.randint(n_classes, (n,), generator=gen)
    aligned = y % n_attributes
    agree = torch.rand(n, generator=gen) < correlation
    other = (aligned + torch.randint(1, max(n_attributes, 2), (n,), generator=gen)) % n_attributes
    return y, torch.where(agree, aligned, other)


def balanced_groups(
    n: int, n_classes: int, n_attributes: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (label, attribute) group gets n / n_groups examples (the remainder spread over the first)."""
    groups = torch.arange(n) % (n_classes * n_attributes)
    groups = groups[torch.randperm(n, generator=gen)]
    return groups // n_attributes, groups % n_attributes


def split_groups(
    split: str, n: int, n_classes: int, n_attributes: int, correlation: float,
    eval_correlation: float | None, gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and attributes of one split: correlated in train, balanced (or as configured) elsewhere."""
    if split == "train":
        return correlated_groups(n, n_classes, n_attributes, correlation, gen)
    if eval_correlation is None:
        return balanced_groups(n, n_classes, n_attributes, gen)
    return correlated_groups(n, n_classes, n_attributes, eval_correlation, gen)


_DIGITS: tuple[torch.Tensor, torch.Tensor] | None = None


def digit_images() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 real handwritten 8x8 digits, scaled to [0, 1], and their labels."""
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        _DIGITS = (torch.tensor(d.images, dtype=torch.float32) / 16.0, torch.tensor(d.target).long())
    return _DIGITS


def digit_pool(seed: int, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The source digits of one split: a fixed 60/20/20 partition, so test writers are never trained on."""
    images, labels = digit_images()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(10_007 + seed))
    cut1, cut2 = int(0.6 * len(perm)), int(0.8 * len(perm))
    part = {"train": perm[:cut1], "val": perm[cut1:cut2], "test": perm[cut2:]}[split]
    return images[part], labels[part]


def draw_digits(
    want: torch.Tensor, seed: int, split: str, gen: torch.Generator, classes_of_digit: torch.Tensor
) -> torch.Tensor:
    """For each wanted class, a random source digit (8x8) of that class from the split's pool."""
    images, digits = digit_pool(seed, split)
    cls = classes_of_digit[digits]
    out = torch.empty(len(want), 8, 8)
    for c in want.unique().tolist():
        where = (want == c).nonzero().squeeze(1)
        pool = (cls == c).nonzero().squeeze(1)
        pick = pool[torch.randint(len(pool), (len(where),), generator=gen)]
        out[where] = images[pick]
    return out


def binary_digit_split(o: dict[str, Any], split: str) -> tuple[torch.Generator, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(generator, labels, attributes, 8x8 source digits) of one split of a two-class digit benchmark whose
    label is `digit >= 5` and whose attribute agrees with it with probability `correlation` in train."""
    gen = split_generator(o["seed"], split)
    y, a = split_groups(split, o[f"n_{split}"], 2, 2, o["correlation"], o["eval_correlation"], gen)
    return gen, y, a, draw_digits(y, o["seed"], split, gen, (torch.arange(10) >= 5).long())


def render_digits(
    digits: torch.Tensor, size: int, gen: torch.Generator, max_shift: float, scale: tuple[float, float]
) -> torch.Tensor:
    """Place 8x8 digits on a `size` x `size` canvas with random scale and shift (one batched resample)."""
    n = len(digits)
    s = scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=gen)
    shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * (2 * max_shift / size)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, :, 2] = -shift / s[:, None]
    src = F.pad(digits[:, None], (1, 1, 1, 1))
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]


def palette(n: int) -> torch.Tensor:
    """`n` well-separated RGB colours (red and green first)."""
    if n == 2:
        return torch.tensor([[1.0, 0.15, 0.1], [0.1, 0.85, 0.2]])
    hues = torch.arange(n) / n
    rgb = []
    for h in hues.tolist():
        rgb.append([0.5 + 0.5 * math.cos(2 * math.pi * (h + k / 3)) for k in range(3)])
    return torch.tensor(rgb)
