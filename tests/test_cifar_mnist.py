"""`cifar-mnist`: MNIST-CIFAR dominoes from CIFAR-10's binary batches and MNIST's IDX files written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tests.test_colored_mnist import write_mnist

from earlyreadout.config import build_config
from earlyreadout.data import DATASETS
from earlyreadout.data.cifar_mnist import RECORD
from earlyreadout.errors import ConfigError, UserError
from earlyreadout.params import checked
from earlyreadout.train.engine import train


def write_cifar(root: Path, n_train: int = 50, n_test: int = 40) -> None:
    """CIFAR-10's binary layout: each record a label byte then 3072 pixel bytes; a pixel's value is its label
    times 20 so a test can find the CIFAR image in the stacked one."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for names, n in (([f"data_batch_{i}.bin" for i in range(1, 6)], n_train), (["test_batch.bin"], n_test)):
        for k, name in enumerate(names):
            labels = (np.arange(n) + k) % 10
            records = np.zeros((n, RECORD), dtype=np.uint8)
            records[:, 0] = labels
            records[:, 1:] = (labels * 20)[:, None]
            records.tofile(folder / name)


@pytest.fixture()
def root(tmp_path):
    write_cifar(tmp_path)
    write_mnist(tmp_path, n_train=60, n_test=30)  # digit d at every index = d mod 10
    return tmp_path


def splits(root: Path, **options):
    return DATASETS.get("cifar-mnist")(**checked(DATASETS.get("cifar-mnist").options,
                                                 {"root": root and str(root), **options}, "cifar-mnist")).splits()


def test_dominoes_stack_a_digit_above_the_cifar_image_with_the_label_from_cifar(root):
    data = splits(root, correlation=1.0)
    train_split, test = data["train"], data["test"]
    assert train_split.x.shape[1:] == (3, 64, 32) and len(test) == 8  # automobile and truck of 40 test records
    assert len(train_split) + len(data["val"]) == 50  # 5 batches x 50 records, 2 classes of 10
    # bottom half: the CIFAR pixels, automobile (1) -> 20/255, truck (9) -> 180/255
    bottom = train_split.x[:, :, 32:].flatten(1)
    assert torch.allclose(bottom, (torch.where(train_split.y == 1, 180, 20) / 255.0)[:, None])
    assert torch.equal(train_split.a, train_split.y)  # correlation 1: the digit agrees with the class
    top = train_split.x[:, 0, :32]
    assert torch.all(top[:, :2] == 0) and torch.all(top[:, :, -2:] == 0)  # the 28 px digit padded to 32
    assert train_split.class_names == ["automobile", "truck"] and train_split.attribute_names == ["digit 0", "digit 1"]


def test_val_and_test_draw_the_digit_independently_and_train_follows_the_correlation(root):
    write_cifar(root / "big", n_train=400, n_test=200)
    write_mnist(root / "big", n_train=60, n_test=30)
    data = splits(root / "big", correlation=0.8)
    agree = (data["train"].a == data["train"].y).float().mean()
    assert 0.7 < agree < 0.9
    for split in ("val", "test"):
        groups = torch.bincount(data[split].y * 2 + data[split].a, minlength=4)
        assert (groups > 0).all(), (split, groups)


def test_the_counterfactual_swaps_only_the_digit(root):
    test = splits(root)["test"]
    swapped = test.counterfactual()
    assert torch.equal(swapped.a, 1 - test.a) and torch.equal(swapped.y, test.y)
    assert torch.equal(swapped.x[:, :, 32:], test.x[:, :, 32:])
    assert not torch.equal(swapped.x[:, :, :32], test.x[:, :, :32])


def test_bad_files_and_settings_say_what_to_do(tmp_path, root):
    with pytest.raises(UserError, match="pass --data-root"):
        splits(None)
    (tmp_path / "py" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(UserError, match="pickle.*download the binary version"):
        splits(tmp_path / "py")
    with pytest.raises(UserError, match="no 'test_batch.bin'.*extract cifar-10-binary.tar.gz"):
        splits(tmp_path / "py" / "cifar-10-batches-py")
    with (root / "cifar-10-batches-bin" / "data_batch_3.bin").open("ab") as f:
        f.write(b"\0" * 5)
    with pytest.raises(UserError, match="not a whole number of 3073-byte records"):
        splits(root)
    (root / "cifar-10-batches-bin" / "data_batch_3.bin").unlink()
    with pytest.raises(UserError, match="data_batch_3.bin' is missing"):
        splits(root)
    with pytest.raises(ConfigError, match="two of airplane"):
        build_config({"data": {"name": "cifar-mnist", "classes": "automobile,horse,cat"}})


def test_a_run_trains_on_it(root):
    cfg = build_config({"method": "erm", "data": {"name": "cifar-mnist", "root": str(root)},
                        "model": {"name": "small-cnn", "width": 8}, "out": str(root / "run"),
                        "train": {"epochs": 1, "batch_size": 16, "progress": False}})
    result = train(cfg, log=lambda _: None)
    assert result["test"]["n"] == 8 and result["test"]["groups_by"] == "label and attribute"
