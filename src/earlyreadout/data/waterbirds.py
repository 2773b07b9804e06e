"""`waterbirds`: CUB birds pasted on Places backgrounds; the background (land/water) is the shortcut."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, find_dataset_dir, read_table, split_codes
from earlyreadout.data.images import IMAGE_OPTIONS, image_model_info, image_split
from earlyreadout.params import Param

FOLDER = "waterbird_complete95_forest2water2"
LAYOUTS = (FOLDER, f"cub/data/{FOLDER}", "waterbirds_v1.0", "waterbirds")
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class Waterbirds:
    """The `waterbird_complete95_forest2water2` release (Sagawa et al. 2020): label y (0 landbird,
    1 waterbird), attribute `place` (0 land, 1 water), group `2*y + place`, split 0/1/2 from metadata.csv."""

    default_model: ClassVar[str] = "resnet"
    published_model: ClassVar[str] = "an ImageNet-pretrained ResNet-50: -c configs/waterbirds-teacher.yaml, or model.arch=resnet50 --weights resnet50-0676ba61.pth"
    options: ClassVar[dict[str, Param]] = {"root": ROOT_OPTION, **IMAGE_OPTIONS}

    def __init__(self, **opts: Any):
        self.o = opts

    def model_input(self) -> tuple[dict[str, Any], int]:
        """(model info, classes), known before any file is read."""
        return image_model_info(self.o["image_size"], self.o["channels"]), 2

    def splits(self) -> dict[str, GroupedDataset]:
        folder = find_dataset_dir(self.o["root"], "waterbirds", "metadata.csv", LAYOUTS)
        path = folder / "metadata.csv"
        meta = read_table(path, "waterbirds", ["img_filename", "y", "split", "place"])
        split = split_codes(meta["split"], SPLIT_CODES, path, "split", "waterbirds")
        out = {}
        for name in SPLIT_CODES:
            rows = meta[split == name]
            out[name] = image_split(
                "waterbirds", name, [folder / f for f in rows["img_filename"]],
                torch.tensor(rows["y"].to_numpy()), torch.tensor(rows["place"].to_numpy()),
                ["landbird", "waterbird"], ["land", "water"], self.o)
        return out
