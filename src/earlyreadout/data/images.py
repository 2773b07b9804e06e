"""Image-file datasets with the standard ImageNet preprocessing used by the benchmark papers, read from
the decoded-image cache (data/cache.py) or decoded with PIL when the cache is off."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.cache import CachedImages, cache_folder, cached_images
from earlyreadout.errors import UserError
from earlyreadout.params import Param

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

IMAGE_OPTIONS: dict[str, Param] = {
    "image_size": Param(224, "side of the square network input in pixels", low=8),
    "augment": Param(False, "train-time augmentation: random resized crop (scale 0.7-1) and horizontal flip"),
    "cache": Param(True, "decode and resize each image once into a uint8 array file read by memory map (when "
                   "it fits on disk); false = decode with PIL every epoch"),
    "cache_dir": Param(None, "folder of the decoded-image cache; null = .earlyreadout-cache/ under the data root "
                       "when writable, else ~/.cache/earlyreadout", nullable=True, kind=str, path=True),
}


def geometry(size: int, train_augment: bool, center_crop: int | None) -> list[Any]:
    """The PIL resize/crop steps of `image_transform` (everything before the conversion to a tensor)."""
    from torchvision import transforms as T

    if train_augment:
        head: list[Any] = [T.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.75, 4 / 3)), T.RandomHorizontalFlip()]
        if center_crop is not None:
            head.insert(0, T.CenterCrop(center_crop))
        return head
    if center_crop is not None:
        return [T.CenterCrop(center_crop), T.Resize((size, size))]
    side = round(size * 256 / 224)
    return [T.Resize((side, side)), T.CenterCrop(size)]


def image_transform(size: int, train_augment: bool, center_crop: int | None = None) -> Callable[[Any], torch.Tensor]:
    """PIL image -> normalised tensor (3, size, size).

    Evaluation: resize to `size * 256 / 224` and centre-crop `size` (the ImageNet recipe, group_DRO's
    Waterbirds); with `center_crop` the image is first centre-cropped to that many pixels and then
    resized to `size` (group_DRO's CelebA: crop 178, resize 224). Augmentation (train only): a random
    resized crop of 70-100 % of the area, ratio 3/4-4/3, and a horizontal flip.
    """
    from torchvision import transforms as T

    tail = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    return T.Compose(geometry(size, train_augment, center_crop) + tail)


def cached_geometry(size: int, train_augment: bool, center_crop: int | None) -> tuple[Callable[[Any], Any], int]:
    """(PIL steps applied before caching, side of the cached square).

    Evaluation caches the final crop itself. With augmentation the cache holds the image (centre-cropped
    first when `center_crop`) resized to `size * 256 / 224`, and `tensor_augment` takes the random crop.
    """
    from torchvision import transforms as T

    if not train_augment:
        return T.Compose(geometry(size, False, center_crop)), size
    side = round(size * 256 / 224)
    head: list[Any] = [] if center_crop is None else [T.CenterCrop(center_crop)]
    return T.Compose(head + [T.Resize((side, side))]), side


def tensor_augment(size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The random resized crop and flip of `image_transform`, on one uint8 tensor (3, H, W) from the cache."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(size, scale=(0.7, 1.0), ratio=(0.75, 4 / 3), antialias=True),
                       v2.RandomHorizontalFlip()])


class Normalise:
    """uint8 image(s) (..., 3, H, W) -> float normalised with the ImageNet mean and std, as one multiply-add
    in place after the conversion (`ToTensor` + `Normalize` up to float rounding, at half their passes)."""

    def __init__(self) -> None:
        mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self.scale = 1 / (255 * std)
        self.shift = -mean / std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32).mul_(self.scale).add_(self.shift)


def unreadable(dataset: str, path: str, error: OSError) -> UserError:
    """The one-line error for an image file that cannot be used, saying what to do about it."""
    from PIL import UnidentifiedImageError

    fix = "replace the file or remove its row from the metadata"
    if isinstance(error, FileNotFoundError):
        return UserError(f"{dataset}: image {path!r} listed in the metadata does not exist; restore it or remove "
                         "its row from the metadata")
    if isinstance(error, UnidentifiedImageError):
        return UserError(f"{dataset}: {path!r} is not a readable image; {fix}")
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    return UserError(f"{dataset}: cannot read image {path!r} ({reason}; truncated or damaged?); {fix}")


def read_rgb(path: Path, dataset: str) -> Any:
    """The image at `path` decoded as RGB (grayscale, palette and RGBA images are converted)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as e:
        raise unreadable(dataset, str(path), e) from None


def image_model_info(size: int) -> dict[str, Any]:
    """The `info` a model is built from: square RGB images of side `size` (known from the options alone, so
    layers can be checked before the images are read)."""
    return {"modality": "image", "shape": (3, size, size)}


class ImageFileDataset(GroupedDataset):
    """A split whose example `i` is the image file `paths[i]`, decoded with PIL when asked for; or, when
    `images` (the decoded-image cache) is given, read from it: `augment` (if any) takes each uint8 image,
    `transform` the uint8 image or a whole batch of them."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], torch.Tensor], size: int,
                 images: CachedImages | None = None, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 **kwargs: Any):
        kwargs.setdefault("info", {})
        kwargs["info"] = {**image_model_info(size), **kwargs["info"]}
        super().__init__(**kwargs)
        if len(paths) != len(self.y):
            raise ValueError(f"{self.name}/{self.split}: {len(paths)} images but {len(self.y)} labels")
        self.paths = [Path(p) for p in paths]
        self.transform = transform
        self.images = images
        self.augment = augment

    def get_x(self, i: int) -> torch.Tensor:
        if self.images is None:
            return self.transform(read_rgb(self.paths[i], self.name))
        image = self.images[i]
        return self.transform(image if self.augment is None else self.augment(image))

    def reads_batches(self) -> bool:
        return self.images is not None

    def get_batch(self, idx: torch.Tensor) -> torch.Tensor:
        if self.images is None:
            return super().get_batch(idx)
        if self.augment is None:
            return self.transform(self.images[idx])
        return self.transform(torch.stack([self.augment(self.images[int(i)]) for i in idx]))


def cache_split(name: str, split: str, paths: Sequence[Path], size: int, train_augment: bool,
                center_crop: int | None, opts: dict[str, Any]) -> CachedImages | None:
    """The decoded-image cache of one split (built now if needed), or None when it cannot be kept on disk."""
    pil_steps, side = cached_geometry(size, train_augment, center_crop)

    def decode(path: Path) -> np.ndarray:
        return np.asarray(pil_steps(read_rgb(path, name))).transpose(2, 0, 1)

    options = {"size": size, "side": side, "augment": train_augment, "center_crop": center_crop}
    folder = cache_folder(opts["cache_dir"], opts["root"])
    try:
        return cached_images(paths, decode, (3, side, side), folder, f"{name}-{split}", options)
    except FileNotFoundError as e:
        raise unreadable(name, str(e.filename), e) from None


def image_split(name: str, split: str, paths: Sequence[Path], y: torch.Tensor, a: torch.Tensor | None,
                class_names: list[str], attribute_names: list[str] | None, opts: dict[str, Any],
                center_crop: int | None = None, info: dict[str, Any] | None = None) -> ImageFileDataset:
    """One image split with the preprocessing the options ask for (augmentation on train only), read
    from the decoded-image cache when `opts["cache"]` is on and the cache fits on disk."""
    size, augment = opts["image_size"], opts["augment"] and split == "train"
    images = cache_split(name, split, paths, size, augment, center_crop, opts) if opts["cache"] and paths else None
    kwargs: dict[str, Any] = {"name": name, "split": split, "y": y, "a": a, "class_names": class_names,
                              "attribute_names": attribute_names, "info": info or {}}
    if images is None:
        return ImageFileDataset(paths, image_transform(size, augment, center_crop), size, **kwargs)
    return ImageFileDataset(paths, Normalise(), size, images, tensor_augment(size) if augment else None,
                            **kwargs)
