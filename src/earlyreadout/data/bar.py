"""`bar`: Biased Action Recognition; the background of an action (rock, water, track) is the shortcut."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, VAL_CARVE_OPTIONS, find_dataset_dir, split_off
from earlyreadout.data.images import IMAGE_OPTIONS, IMAGE_SUFFIXES, image_model_info, image_split
from earlyreadout.errors import UserError
from earlyreadout.io import read_json_file
from earlyreadout.params import Param

CLASSES = ("climbing", "diving", "fishing", "racing", "throwing", "pole vaulting")
LAYOUTS = ("BAR", "bar")


def class_of(path: Path, metadata: dict[str, Any]) -> str:
    """The action class of an image: `cls` in metadata.json when listed, else the `{cls}_{n}` file name."""
    entry = metadata.get(path.stem)
    name = entry.get("cls") if isinstance(entry, dict) else path.stem.rsplit("_", 1)[0]
    if name not in CLASSES:
        raise UserError(f"bar: cannot tell the class of {str(path)!r} (got {name!r}); expected files named "
                        f"{{class}}_{{n}}.jpg with class one of {', '.join(CLASSES)}")
    return name


class BAR:
    """BAR (Nam et al. 2020): six actions; train images mostly show the usual background, test images
    (654) are all bias-conflicting. There are no bias labels, so groups are the classes and worst-group
    accuracy is worst-class accuracy. The release has no validation split: `val_from` takes a seeded
    `val_fraction` of train (default) or of test, as the sieve paper did (say which you used)."""

    default_model: ClassVar[str] = "resnet"
    published_model: ClassVar[str] = "an ImageNet-pretrained ResNet-18: -c configs/bar-sieve.yaml, or --weights resnet18-f37072fd.pth"
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        **VAL_CARVE_OPTIONS,
        "split_seed": Param(0, "seed of the validation carve-out", low=0),
        **IMAGE_OPTIONS,
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def model_input(self) -> tuple[dict[str, Any], int]:
        """(model info, classes), known before any file is read."""
        return image_model_info(self.o["image_size"], self.o["channels"]), len(CLASSES)

    def splits(self) -> dict[str, GroupedDataset]:
        folder = find_dataset_dir(self.o["root"], "bar", "train", LAYOUTS)
        meta_path = folder / "metadata.json"
        metadata = read_json_file(meta_path, "bar: metadata file", "restore it from the BAR release") \
            if meta_path.is_file() else {}
        files: dict[str, list[Path]] = {}
        for split in ("train", "test"):
            sub = folder / split
            if not sub.is_dir():
                raise UserError(f"bar: missing folder {str(sub)!r}; the release has train/ and test/")
            files[split] = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not files[split]:
                raise UserError(f"bar: no images (.jpg/.png) in {str(sub)!r}")
        source = self.o["val_from"]
        kept, held = split_off(len(files[source]), self.o["val_fraction"], self.o["split_seed"])
        chosen = {
            "train": files["train"] if source == "test" else [files["train"][i] for i in kept],
            "val": [files[source][i] for i in held],
            "test": files["test"] if source == "train" else [files["test"][i] for i in kept],
        }
        out = {}
        for name, paths in chosen.items():
            y = torch.tensor([CLASSES.index(class_of(p, metadata)) for p in paths], dtype=torch.long)
            out[name] = image_split("bar", name, paths, y, None, list(CLASSES), None, self.o)
        return out
