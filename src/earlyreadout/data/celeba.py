"""`celeba`: CelebA faces, any of the 40 attributes as label and any other as the spurious attribute."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from earlyreadout.data.base import GroupedDataset
from earlyreadout.data.files import ROOT_OPTION, check_columns, find_dataset_dir, read_table, require_file
from earlyreadout.data.images import IMAGE_OPTIONS, image_model_info, image_split
from earlyreadout.errors import UserError
from earlyreadout.io import read_text_file
from earlyreadout.params import Param

LAYOUTS = ("celebA_v1.0", "celeba", "celebA", "CelebA")
SPLITS = {0: "train", 1: "val", 2: "test"}


def read_attributes(folder: Path) -> tuple[pd.DataFrame, Path]:
    """The attribute table indexed by image_id, from `list_attr_celeba.csv` or the original `.txt`."""
    csv = folder / "list_attr_celeba.csv"
    if csv.is_file():
        return read_table(csv, "celeba", ["image_id"]).set_index("image_id"), csv
    txt = require_file(folder / "list_attr_celeba.txt", "celeba", "attribute file (.csv or .txt)")
    lines = read_text_file(txt, "celeba: attribute file", "restore it from the CelebA release").splitlines()
    if len(lines) < 2:
        raise UserError(f"celeba: {str(txt)!r} is too short (expected a count line and a names line)")
    names = lines[1].split()
    rows = [line.split() for line in lines[2:] if line.strip()]
    bad = next((r for r in rows if len(r) != len(names) + 1), None)
    if bad is not None:
        raise UserError(f"celeba: {str(txt)!r} has a row with {len(bad) - 1} values for {len(names)} attributes "
                        f"({bad[0]})")
    frame = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=names).astype(int)
    frame.index.name = "image_id"
    return frame, txt


def read_partition(folder: Path) -> pd.Series:
    """Split code (0/1/2) per image_id, from `list_eval_partition.csv` or the header-less `.txt`."""
    csv = folder / "list_eval_partition.csv"
    if csv.is_file():
        return read_table(csv, "celeba", ["image_id", "partition"]).set_index("image_id")["partition"]
    txt = require_file(folder / "list_eval_partition.txt", "celeba", "partition file (.csv or .txt)")
    frame = read_table(txt, "celeba", sep=r"\s+", header=None, names=["image_id", "partition"])
    return frame.set_index("image_id")["partition"]


def image_folder(folder: Path) -> Path:
    """`img_align_celeba/`, or the nested `img_align_celeba/img_align_celeba/` some downloads have."""
    top = require_file(folder / "img_align_celeba", "celeba", "image folder")
    nested = top / "img_align_celeba"
    return nested if nested.is_dir() else top


class CelebA:
    """CelebA (Liu et al. 2015) as in group_DRO: `target` (default Blond_Hair) x `attribute` (default Male),
    values -1/1 read as 0/1, group `2*y + a`, the official partition, centre-crop 178 then resize."""

    default_model: ClassVar[str] = "resnet"
    published_model: ClassVar[str] = "an ImageNet-pretrained ResNet-50: -c configs/celeba-teacher.yaml, or model.arch=resnet50 --weights resnet50-0676ba61.pth"
    options: ClassVar[dict[str, Param]] = {
        "root": ROOT_OPTION,
        "target": Param("Blond_Hair", "attribute column used as the label"),
        "attribute": Param("Male", "attribute column used as the spurious attribute"),
        **IMAGE_OPTIONS,
    }

    def __init__(self, **opts: Any):
        self.o = opts

    def model_input(self) -> tuple[dict[str, Any], int]:
        """(model info, classes), known before any file is read."""
        return image_model_info(self.o["image_size"], self.o["channels"]), 2

    def splits(self) -> dict[str, GroupedDataset]:
        target, attribute = self.o["target"], self.o["attribute"]
        if target == attribute:
            raise UserError(f"celeba: target and attribute are both {target!r}; choose two different columns")
        folder = find_dataset_dir(self.o["root"], "celeba", "img_align_celeba", LAYOUTS)
        attrs, attr_path = read_attributes(folder)
        check_columns(attrs, [target, attribute], attr_path, "celeba")
        partition = read_partition(folder)
        joined = attrs[[target, attribute]].join(partition, how="inner")
        if len(joined) == 0:
            raise UserError(f"celeba: no image_id is shared by {attr_path.name} and the partition file")
        images = image_folder(folder)
        out = {}
        for code, name in SPLITS.items():
            rows = joined[joined["partition"] == code]
            y = torch.tensor((rows[target].to_numpy() > 0).astype(int))
            a = torch.tensor((rows[attribute].to_numpy() > 0).astype(int))
            out[name] = image_split(
                "celeba", name, [images / i for i in rows.index], y, a,
                [f"not {target}", target], [f"not {attribute}", attribute], self.o, center_crop=178)
        return out
