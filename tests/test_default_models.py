"""Every real-dataset loader's default model at its default image size: one training step, and a layer1
feature map of the standard ResNet's size (input / 4), not the small-input stem's (input / 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from earlyreadout.config import build_config
from earlyreadout.distributed import DistInfo
from earlyreadout.models.layers import FeatureTap
from earlyreadout.train.engine import build_run, train
from test_datasets_real import civil_tree, image, waterbirds_tree


def bar_tree(root: Path) -> None:
    meta = {}
    for split in ("train", "test"):
        for c in ("climbing", "diving"):
            for i in range(3):
                image(root / "BAR" / split / f"{c}_{split}{i}.jpg")
                meta[f"{c}_{split}{i}"] = {"cls": c, "train": split == "train"}
    (root / "BAR" / "metadata.json").write_text(json.dumps(meta))


def nico_tree(root: Path) -> None:
    for cls in ("dog", "cat"):
        for ctx, n in {"on snow": 4, "in water": 3, "on grass": 2, "at home": 2}.items():
            for i in range(n):
                image(root / "NICO" / "Animal" / cls / ctx / f"{i}.jpg")


def csv_tree(root: Path) -> None:
    for i in range(6):
        image(root / "imgs" / f"{i}.png")
    rows = ["id,filename,split,y,a"] + [f"{i},imgs/{i}.png,{i % 3},{i % 2},{(i // 2) % 2}" for i in range(6)]
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")


TREES = {"waterbirds": waterbirds_tree, "bar": bar_tree, "nico": nico_tree, "csv": csv_tree}


@pytest.mark.parametrize("name", sorted(TREES))
def test_default_model_at_default_size_uses_the_standard_stem(name, tmp_path):
    TREES[name](tmp_path)
    cfg = build_config({"data": {"name": name, "root": str(tmp_path)}, "train": {"batch_size": 2, "device": "cpu"},
                        "out": str(tmp_path / "run")})
    method, _, loader = build_run(cfg, torch.device("cpu"), DistInfo())
    size = cfg.data.settings["image_size"]
    assert size >= 64  # the published preprocessing, 224 px by default
    method.train()
    with FeatureTap(method.network, [method.ctx.layers.stages[0]]) as tap:
        stats = method.update(next(iter(loader)), 0)
        layer1 = next(iter(tap.features.values()))
    assert torch.isfinite(torch.tensor(stats["loss"]))
    assert tuple(layer1.shape[-2:]) == (size // 4, size // 4)


def test_civilcomments_alone_trains_the_built_in_text_model_and_says_how_to_get_the_published_one(tmp_path):
    civil_tree(tmp_path)
    cfg = build_config({"data": {"name": "civilcomments", "root": str(tmp_path)},
                        "train": {"epochs": 1, "batch_size": 4, "device": "cpu", "select_by": "average"},
                        "out": str(tmp_path / "run")})
    assert cfg.model.name == "text-transformer"
    lines: list[str] = []
    train(cfg, log=lines.append)
    said = [line for line in lines if "published setting" in line]
    assert len(said) == 1 and "--model hf model.path=DIR" in said[0]
    assert "notes" not in (tmp_path / "run" / "config.yaml").read_text()  # said, not stored


def test_an_image_dataset_without_weights_says_once_how_to_start_from_imagenet(tmp_path):
    waterbirds_tree(tmp_path)
    cfg = build_config({"data": {"name": "waterbirds", "root": str(tmp_path)}, "out": str(tmp_path / "run")})
    assert len(cfg.notes) == 1 and "--weights resnet50-0676ba61.pth" in cfg.notes[0]
    named = build_config({"data": {"name": "waterbirds", "root": str(tmp_path)}, "model": {"name": "resnet"},
                          "out": str(tmp_path / "run")})
    assert named.notes == ()  # a model the user chose is not second-guessed
