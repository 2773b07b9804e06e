"""`small-digits`: about 1,000 handwritten digits whose corner mark is a spatial shortcut for the label."""

from __future__ import annotations

from typing import ClassVar

import torch

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.synthetic import common
from earlyreadout.params import Param


class SmallDigits(common.GeneratedBenchmark):
    """A small-data benchmark: few training images, few minority examples, a shortcut that is not colour.

    Grey scikit-learn digits (label `digit >= 5`) with random shift, scale and noise below a top band
    that holds a short bright bar; the attribute is where the bar sits (`mark=position`: the left or the
    right corner) or how it lies (`mark=orientation`: horizontal or vertical, in the left corner). In
    train the mark agrees with the label with probability `correlation` (0.96: about 40 minority
    examples out of 1,000); val/test are group-balanced. The band is the spurious region, the rest of
    the image the core region (`info`).
    """

    default_model: ClassVar[str] = "small-cnn"
    options: ClassVar[dict[str, Param]] = {
        **common.COMMON_OPTIONS,
        "correlation": Param(0.96, "probability that the mark agrees with the label in train", low=0.0, high=1.0),
        "n_train": Param(1000, "training examples", low=1),
        "n_val": Param(400, "validation examples", low=1),
        "n_test": Param(800, "test examples", low=1),
        "mark": Param("position", "what the attribute changes: the bar's corner or its orientation",
                      choices=("position", "orientation")),
        "size": Param(28, "image side in pixels (the digit's square below the band)", low=16),
        "noise": Param(0.1, "std of Gaussian pixel noise", low=0.0),
        "max_shift": Param(3.0, "largest random translation of the digit in pixels", low=0.0),
    }

    def make(self, split: str) -> GroupedDataset:
        o = self.o
        gen, y, a, digits = common.binary_digit_split(o, split)
        n, s = len(y), o["size"]
        ink = common.render_digits(digits, s, gen, o["max_shift"], (0.65, 0.9))
        t = max(2, s // 14)  # bar thickness; the band is two bars tall
        long = 3 * t
        band = torch.zeros(n, 2 * t + 2, s)
        if o["mark"] == "position":
            left = (a == 0).nonzero().squeeze(1)
            right = (a == 1).nonzero().squeeze(1)
            band[left, t // 2 : t // 2 + t, 1 : 1 + long] = 1.0
            band[right, t // 2 : t // 2 + t, s - 1 - long : s - 1] = 1.0
            names = ["left", "right"]
        else:
            flat = (a == 0).nonzero().squeeze(1)
            upright = (a == 1).nonzero().squeeze(1)
            band[flat, t // 2 : t // 2 + t, 1 : 1 + long] = 1.0
            band[upright, :, 1 + t : 1 + 2 * t] = 1.0
            names = ["horizontal", "vertical"]
        x = torch.cat([band, ink], dim=1)[:, None].expand(-1, 3, -1, -1)
        x = x + o["noise"] * torch.randn(x.shape, generator=gen)
        h = band.shape[1]
        return TensorGroupedDataset(
            x=x.float().contiguous(), name="small-digits", split=split, y=y, a=a, class_names=["<5", ">=5"],
            attribute_names=names,
            info={"modality": "image", "shape": tuple(x.shape[1:]),
                  "core_region": (h, h + s, 0, s), "spurious_region": (0, h, 0, s)},
        )
