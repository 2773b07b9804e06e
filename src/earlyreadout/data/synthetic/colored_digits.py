"""`colored-digits`: real handwritten digits whose colour is a spurious shortcut for the label."""

from __future__ import annotations

from typing import ClassVar

import torch

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.synthetic import common
from earlyreadout.params import Param


class ColoredDigits(common.GeneratedBenchmark):
    """scikit-learn digits upscaled with random shift/scale/noise and coloured by the attribute.

    Labels are `digit >= 5` (binary) or the digit (multiclass); the attribute is a colour applied as a
    stroke tint, a background, or a corner patch. In train the colour agrees with the label with
    probability `correlation`.
    """

    default_model: ClassVar[str] = "small-cnn"
    swaps_attribute: ClassVar[bool] = True
    options: ClassVar[dict[str, Param]] = {
        **common.COMMON_OPTIONS,
        "labels": Param("binary", "binary (digit >= 5) or multiclass (the 10 digits)",
                        choices=("binary", "multiclass")),
        "spurious": Param("tint", "how the colour appears", choices=("tint", "background", "patch")),
        "size": Param(28, "image side in pixels", low=8),
        "noise": Param(0.1, "std of Gaussian pixel noise", low=0.0),
        "color_jitter": Param(0.1, "std of per-image colour noise", low=0.0),
        "max_shift": Param(3.0, "largest random translation in pixels", low=0.0),
    }

    def make(self, split: str, attribute_shift: int = 0) -> GroupedDataset:
        o = self.o
        gen = common.split_generator(o["seed"], split)
        binary = o["labels"] == "binary"
        n_classes = 2 if binary else 10
        class_of_digit = (torch.arange(10) >= 5).long() if binary else torch.arange(10)
        n = o[f"n_{split}"]
        y, a = common.split_groups(split, n, n_classes, n_classes, o["correlation"], o["eval_correlation"], gen)
        a = common.shift_attributes(a, attribute_shift, n_classes)  # the draws below do not depend on `a`
        digits = common.draw_digits(y, o["seed"], split, gen, class_of_digit)
        ink = common.render_digits(digits, o["size"], gen, o["max_shift"], (0.65, 0.9))
        colors = common.palette(n_classes)[a] + o["color_jitter"] * torch.randn(n, 3, generator=gen)
        colors = colors.clamp(0, 1)[:, :, None, None]
        ink = ink[:, None].clamp(0, 1)
        if o["spurious"] == "tint":
            x = ink * colors
        elif o["spurious"] == "background":
            x = ink + (1 - ink) * 0.6 * colors
        else:
            x = ink.expand(-1, 3, -1, -1).clone()
            p = max(3, o["size"] // 6)
            x[:, :, :p, :p] = colors.expand(-1, -1, p, p)
        x = x + o["noise"] * torch.randn(x.shape, generator=gen)
        info = {"modality": "image", "shape": tuple(x.shape[1:])}
        if o["spurious"] == "patch":  # only a patch puts the colour in its own place, apart from the digit
            info["spurious_region"] = (0, p, 0, p)
        names = ["<5", ">=5"] if binary else [str(d) for d in range(10)]
        color_names = ["red", "green"] if binary else [f"color{c}" for c in range(10)]
        return TensorGroupedDataset(
            x=x.float().contiguous(), name="colored-digits", split=split, y=y, a=a, class_names=names,
            attribute_names=color_names, info=info,
        )
