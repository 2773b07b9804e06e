"""`dominoes`: a simple part (top) and a handwritten digit (bottom) both predict the label in train."""

from __future__ import annotations

from typing import ClassVar

import torch

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.synthetic import common
from earlyreadout.params import Param


class Dominoes(common.GeneratedBenchmark):
    """The simplicity-bias probe (MNIST-CIFAR style): top half simple, bottom half a real digit.

    The label is `digit >= 5`; the attribute is the class the simple part indicates (a red vs green
    patch, or a horizontal vs vertical bar). In train they agree with probability `correlation`;
    in val/test they are independent, so only the digit predicts the label there. The bottom half is
    the core region and the top half the spurious region (`info["core_region"]`).
    """

    default_model: ClassVar[str] = "small-cnn"
    swaps_attribute: ClassVar[bool] = True
    options: ClassVar[dict[str, Param]] = {
        **common.COMMON_OPTIONS,
        "correlation": Param(0.99, "probability that the simple part agrees with the label in train",
                             low=0.0, high=1.0),
        "simple": Param("color", "the simple part", choices=("color", "bar")),
        "size": Param(16, "side of each half in pixels", low=8),
        "noise": Param(0.1, "std of Gaussian pixel noise", low=0.0),
        "max_shift": Param(2.0, "largest random translation of the digit in pixels", low=0.0),
    }

    def make(self, split: str, attribute_shift: int = 0) -> GroupedDataset:
        o = self.o
        gen, y, a, digits = common.binary_digit_split(o, split)
        a = common.shift_attributes(a, attribute_shift, 2)  # the draws below do not depend on `a`
        n, s = len(y), o["size"]
        bottom = common.render_digits(digits, s, gen, o["max_shift"], (0.7, 0.95))[:, None].expand(-1, 3, -1, -1)
        top = torch.zeros(n, 3, s, s)
        m = s // 4
        if o["simple"] == "color":
            colors = common.palette(2)[a][:, :, None, None]
            top[:, :, m : s - m, m : s - m] = colors.expand(-1, -1, s - 2 * m, s - 2 * m)
        else:
            horizontal = (a == 0)[:, None, None, None]
            bar = torch.zeros(n, 3, s, s)
            bar[:, :, s // 2 - 2 : s // 2 + 2, m : s - m] = 1.0
            top = torch.where(horizontal, bar, bar.transpose(2, 3))
        x = torch.cat([top, bottom], dim=2)
        x = x + o["noise"] * torch.randn(x.shape, generator=gen)
        simple_names = ["red", "green"] if o["simple"] == "color" else ["horizontal", "vertical"]
        return TensorGroupedDataset(
            x=x.float().contiguous(), name="dominoes", split=split, y=y, a=a, class_names=["<5", ">=5"],
            attribute_names=simple_names,
            info={"modality": "image", "shape": tuple(x.shape[1:]),
                  "core_region": (s, 2 * s, 0, s), "spurious_region": (0, s, 0, s)},
        )
