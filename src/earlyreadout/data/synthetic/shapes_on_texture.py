"""`shapes-on-texture`: a shape on a striped background whose stripe orientation is a spurious shortcut."""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from earlyreadout.data.base import GroupedDataset, TensorGroupedDataset
from earlyreadout.data.synthetic import common
from earlyreadout.params import Param

SHAPES = ("circle", "triangle", "square", "cross")
ORIENTATIONS = {2: ("horizontal", "vertical"), 3: ("0deg", "60deg", "120deg"),
                4: ("horizontal", "diagonal", "vertical", "antidiagonal")}


def shape_distance(shape: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """A signed distance (< 0 inside) of each shape in its own frame; every shape has the unit disk's area."""
    if shape == "circle":
        return torch.sqrt(u**2 + v**2) - 1.0
    if shape == "square":
        return torch.maximum(u.abs(), v.abs()) - math.sqrt(math.pi) / 2
    if shape == "triangle":
        inradius = math.sqrt(math.pi / (3 * math.sqrt(3)))
        sides = [u * math.cos(t) + v * math.sin(t) for t in (math.pi / 2, math.pi * 7 / 6, math.pi * 11 / 6)]
        return torch.stack(sides).amax(0) - inradius
    arm = (8 - math.sqrt(64 - 16 * math.pi)) / 8  # half-width of a plus sign of half-length 1 and area pi
    bar1 = torch.maximum(u.abs() - 1.0, v.abs() - arm)
    bar2 = torch.maximum(u.abs() - arm, v.abs() - 1.0)
    return torch.minimum(bar1, bar2)


class ShapesOnTexture(common.GeneratedBenchmark):
    """A Waterbirds-like composite: an object's shape is the label, its background's texture the attribute.

    Each image is a filled shape (the first `n_classes` of circle, triangle, square, cross; near white, or
    of random colour with `fill=random`) at random position, scale and rotation, on stripes of random
    colours, period and phase whose orientation (horizontal vs vertical, or `n_classes` orientations) is
    the attribute. In train the orientation agrees with the shape with probability `correlation`; in
    val/test they are independent, and every class has `n_classes - 1` minority groups. The orientation
    is readable from any few pixels of background, the shape only from the whole object, so the texture
    is the simpler feature. The object moves, so there is no fixed core region.
    """

    default_model: ClassVar[str] = "small-cnn"
    options: ClassVar[dict[str, Param]] = {
        **common.COMMON_OPTIONS,
        "correlation": Param(0.95, "probability that the texture agrees with the shape in train",
                             low=0.0, high=1.0),
        "n_train": Param(1400, "training examples", low=1),
        "n_val": Param(320, "validation examples", low=1),
        "n_test": Param(800, "test examples", low=1),
        "n_classes": Param(2, "shapes (circle, triangle, square, cross) and as many textures", low=2, high=4),
        "size": Param(64, "image side in pixels", low=32),
        "scale": Param(0.3, "mean object radius as a fraction of the image side (+-25 %)", low=0.1, high=0.4),
        "noise": Param(0.1, "std of Gaussian pixel noise", low=0.0),
        "contrast": Param(0.5, "brightness difference between the two stripe colours", low=0.0, high=0.9),
        "rotation": Param(180.0, "largest rotation of the object in degrees", low=0.0, high=180.0),
        "fill": Param("light", "object colour: light (near white, stands out) or random (harder)",
                      choices=("light", "random")),
        "period": Param(8.0, "mean stripe period in pixels (+-25 %)", low=2.0),
    }

    def make(self, split: str) -> GroupedDataset:
        o = self.o
        gen = common.split_generator(o["seed"], split)
        n, s, k = o[f"n_{split}"], o["size"], o["n_classes"]
        y, a = common.split_groups(split, n, k, k, o["correlation"], o["eval_correlation"], gen)

        def uniform(lo: float, hi: float, *shape: int) -> torch.Tensor:
            return lo + (hi - lo) * torch.rand(*shape, generator=gen)

        coords = (torch.arange(s) + 0.5) / s * 2 - 1  # pixel centres in [-1, 1]
        rows, cols = coords[None, :, None], coords[None, None, :]
        # background: stripes of orientation a (+-8 degrees), random period, phase and colours
        angle = a.float() * math.pi / k + uniform(-0.14, 0.14, n)
        period = o["period"] * uniform(0.75, 1.25, n) * 2 / s
        across = rows * torch.cos(angle)[:, None, None] + cols * torch.sin(angle)[:, None, None]
        phase = uniform(0, 2 * math.pi, n)[:, None, None]
        wave = (torch.sin(2 * math.pi * across / period[:, None, None] + phase) * 3).clamp(-1, 1) * 0.5 + 0.5
        dark = uniform(0.05, 0.95 - o["contrast"], n, 3)
        light = dark + o["contrast"]
        background = dark[:, :, None, None] + (light - dark)[:, :, None, None] * wave[:, None]
        # object: shape y with random radius, centre (inside the image), rotation and colour
        radius = o["scale"] * 2 * uniform(0.75, 1.25, n)
        centre = uniform(-1, 1, n, 2) * (1 - 1.2 * radius)[:, None]
        turn = uniform(-1, 1, n) * o["rotation"] * math.pi / 180
        dr, dc = rows - centre[:, 0, None, None], cols - centre[:, 1, None, None]
        cos, sin = torch.cos(turn)[:, None, None], torch.sin(turn)[:, None, None]
        u = (dc * cos + dr * sin) / radius[:, None, None]
        v = (-dc * sin + dr * cos) / radius[:, None, None]
        distance = torch.empty(n, s, s)
        for c in range(k):
            idx = (y == c).nonzero().squeeze(1)
            distance[idx] = shape_distance(SHAPES[c], u[idx], v[idx])
        pixels_per_unit = (radius * s / 2)[:, None, None]
        mask = (0.5 - distance * pixels_per_unit).clamp(0, 1)[:, None]  # anti-aliased edge, one pixel wide
        fill = uniform(0.85, 1, n, 3) if o["fill"] == "light" else uniform(0, 1, n, 3)
        x = background * (1 - mask) + fill[:, :, None, None] * mask
        x = x + o["noise"] * torch.randn(x.shape, generator=gen)
        return TensorGroupedDataset(
            x=x.float().contiguous(), name="shapes-on-texture", split=split, y=y, a=a,
            class_names=list(SHAPES[:k]), attribute_names=list(ORIENTATIONS[k]),
            info={"modality": "image", "shape": tuple(x.shape[1:])},
        )
