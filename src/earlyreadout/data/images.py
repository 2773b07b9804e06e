"""Image-file datasets with the standard ImageNet preprocessing used by the benchmark papers, read from
the decoded-image cache (data/cache.py) or decoded with PIL when the cache is off."""

from __future__ import annotations

import warnings
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



def numbers(values: list) -> str | None:
    """The problem of a list that should hold only numbers (None when it does)."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return None
    return f"expected a list of numbers, e.g. [0.5, 0.5, 0.5]; got {values!r}"


IMAGE_OPTIONS: dict[str, Param] = {
    "image_size": Param(224, "side of the square network input in pixels", low=8),
    "augment": Param(False, "train-time augmentation: random resized crop (scale 0.7-1) and horizontal flip"),
    "cache": Param(True, "decode and resize each image once into a uint8 array file read by memory map (when "
                   "it fits on disk); false = decode with PIL every epoch"),
    "mean": Param(list(IMAGENET_MEAN), "per-channel mean subtracted after scaling pixels to [0, 1] (the training "
                  "transform of the model; null = no normalisation)", nullable=True, kind=list),
    "std": Param(list(IMAGENET_STD), "per-channel standard deviation divided by after the mean (null = 1)",
                 nullable=True, kind=list, check=numbers),
    "channels": Param(3, "input channels: 3 (RGB) or 1 (grayscale, for models trained on grayscale images)",
                      choices=(1, 3)),
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


def image_transform(size: int, train_augment: bool, center_crop: int | None = None,
                    normalise: Normalise | None = None) -> Callable[[Any], torch.Tensor]:
    """PIL image -> normalised tensor (channels, size, size) (`normalise`: ImageNet's mean and std on RGB).

    Evaluation: resize to `size * 256 / 224` and centre-crop `size` (the ImageNet recipe, group_DRO's
    Waterbirds); with `center_crop` the image is first centre-cropped to that many pixels and then
    resized to `size` (group_DRO's CelebA: crop 178, resize 224). Augmentation (train only): a random
    resized crop of 70-100 % of the area, ratio 3/4-4/3, and a horizontal flip.
    """
    from torchvision import transforms as T

    tail = [T.PILToTensor(), normalise or Normalise()]
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
    """uint8 RGB image(s) (..., 3, H, W) -> float (..., channels, H, W) scaled to [0, 1], made grayscale (ITU-R
    601 luma) when `channels` is 1, then normalised with `mean` and `std` (None: left as they are), as one
    multiply-add in place (`ToTensor` + `Normalize` up to float rounding, at half their passes)."""

    def __init__(self, mean: Sequence[float] | None = IMAGENET_MEAN, std: Sequence[float] | None = IMAGENET_STD,
                 channels: int = 3) -> None:
        n = channels
        for name, values in (("mean", mean), ("std", std)):
            if values is not None and len(values) not in (1, n):
                raise UserError(f"data.{name} has {len(values)} values (ImageNet's RGB ones unless given); give one "
                                f"per input channel ({n}) or one, e.g. --mean 0.5 --std 0.5, or none")
        if std is not None and any(v <= 0 for v in std):
            raise UserError(f"data.std must be positive; got {list(std)}")
        mean_t = torch.tensor(list(mean) if mean is not None else [0.0], dtype=torch.float32).expand(n).reshape(n, 1, 1)
        std_t = torch.tensor(list(std) if std is not None else [1.0], dtype=torch.float32).expand(n).reshape(n, 1, 1)
        self.channels = channels
        self.scale = 1 / (255 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.channels == 1:
            luma = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
            x = (x * luma).sum(-3, keepdim=True)
        return x.mul_(self.scale).add_(self.shift)


def normaliser(opts: dict[str, Any]) -> Normalise:
    """The normalisation an image dataset's options ask for."""
    return Normalise(opts.get("mean", IMAGENET_MEAN), opts.get("std", IMAGENET_STD), opts.get("channels", 3))


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


def image_model_info(size: int, channels: int = 3) -> dict[str, Any]:
    """The `info` a model is built from: square images of side `size` with `channels` (known from the options
    alone, so layers can be checked before the images are read)."""
    return {"modality": "image", "shape": (channels, size, size)}


class ImageFileDataset(GroupedDataset):
    """A split whose example `i` is the image file `paths[i]`, decoded with PIL when asked for; or, when
    `images` (the decoded-image cache) is given, read from it: `augment` (if any) takes each uint8 image,
    `transform` the uint8 image or a whole batch of them."""

    def __init__(self, paths: Sequence[Path], transform: Callable[[Any], torch.Tensor], size: int,
                 images: CachedImages | None = None, augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 channels: int = 3, **kwargs: Any):
        kwargs.setdefault("info", {})
        kwargs["info"] = {**image_model_info(size, channels), **kwargs["info"]}
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


UPSCALE_WARNING = 2.0  # times the image's side


def warn_upscaling(dataset: str, side: int, size: int) -> bool:
    """Warn (once, when the decoded-image cache is built) when the network input is more than UPSCALE_WARNING
    times the images' side: 28 px images fed to a ResNet at 224 px cost ~60x the compute for nothing."""
    if size > UPSCALE_WARNING * side:
        warnings.warn(f"{dataset}: {side} px images are resized up to {size} px (data.image_size); for small images "
                      f"train a small network at their size: --model small-cnn data.image_size={side}", stacklevel=2)
        return True
    return False


def cache_split(name: str, split: str, paths: Sequence[Path], size: int, train_augment: bool,
                center_crop: int | None, opts: dict[str, Any]) -> CachedImages | None:
    """The decoded-image cache of one split (built now if needed), or None when it cannot be kept on disk."""
    pil_steps, side = cached_geometry(size, train_augment, center_crop)
    warned: list[bool] = []

    def decode(path: Path) -> np.ndarray:
        image = read_rgb(path, name)
        if not warned:
            warned.append(warn_upscaling(name, max(image.size), size))
        return np.asarray(pil_steps(image)).transpose(2, 0, 1)

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
    normalise, channels = normaliser(opts), opts.get("channels", 3)
    if images is None:
        return ImageFileDataset(paths, image_transform(size, augment, center_crop, normalise), size,
                                channels=channels, **kwargs)
    return ImageFileDataset(paths, normalise, size, images, tensor_augment(size) if augment else None,
                            channels=channels, **kwargs)
