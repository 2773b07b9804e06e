"""Lazily decoded image datasets with the standard ImageNet preprocessing used by the benchmark papers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.errors import UserError
from earlyreadout.params import Param

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_OPTIONS: dict[str, Param] = {
    "image_size": Param(224, "side of the square network input in pixels", low=8),
    "augment": Param(False, "train-time augmentation: random resized crop (scale 0.7-1) and horizontal flip"),
}


def image_transform(size: int, train_augment: bool, center_crop: int | None = None) -> Callable[[Any], torch.Tensor]:
    """PIL image -> normalised tensor (3, size, size).

    Evaluation: resize to `size * 256 / 224` and centre-crop `size` (the ImageNet recipe, group_DRO's
    Waterbirds); with `center_crop` the image is first centre-cropped to that many pixels and then
    resized to `size` (group_DRO's CelebA: crop 178, resize 224). Augmentation (train only): a random
    resized crop of 70-100 % of the area, ratio 3/4-4/3, and a horizontal flip.
    """
    from torchvision import transforms as T

    tail = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    if train_augment:
        head: list[Any] = [T.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.75, 4 / 3)), T.RandomHorizontalFlip()]
        if center_crop is not None:
            head.insert(0, T.CenterCrop(center_crop))
    elif center_crop is not None:
        head = [T.CenterCrop(center_crop), T.Resize((size, size))]
    else:
        side = round(size * 256 / 224)
        head = [T.Resize((side, side)), T.CenterCrop(size)]
    return T.Compose(head + tail)


class ImageFileDataset(GroupedDataset):
    """A split whose example `i` is the image file `paths[i]`, decoded with PIL only when asked for."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], torch.Tensor], size: int, **kwargs: Any):
        kwargs.setdefault("info", {})
        kwargs["info"] = {"modality": "image", "shape": (3, size, size), **kwargs["info"]}
        super().__init__(**kwargs)
        if len(paths) != len(self.y):
            raise ValueError(f"{self.name}/{self.split}: {len(paths)} images but {len(self.y)} labels")
        self.paths = [Path(p) for p in paths]
        self.transform = transform

    def get_x(self, i: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB"))
        except FileNotFoundError:
            raise UserError(f"{self.name}: image {str(path)!r} listed in the metadata does not exist") from None
        except UnidentifiedImageError:
            raise UserError(f"{self.name}: {str(path)!r} is not a readable image") from None


def image_split(name: str, split: str, paths: Sequence[Path], y: torch.Tensor, a: torch.Tensor | None,
                class_names: list[str], attribute_names: list[str] | None, opts: dict[str, Any],
                center_crop: int | None = None, info: dict[str, Any] | None = None) -> ImageFileDataset:
    """One image split with the preprocessing the options ask for (augmentation on train only)."""
    transform = image_transform(opts["image_size"], opts["augment"] and split == "train", center_crop)
    return ImageFileDataset(paths, transform, opts["image_size"], name=name, split=split, y=y, a=a,
                            class_names=class_names, attribute_names=attribute_names, info=info or {})
