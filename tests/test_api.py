"""The public API, tested as the README shows it: data, a model trained elsewhere, its diagnosis and its fix."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

import earlyreadout as er
from conftest import tiny_config
from earlyreadout.errors import UserError
from earlyreadout.train.engine import train
from earlyreadout.train.retrain import retrain
from earlyreadout.train.runs import load_trained
from practitioner import image_folder, train_own_model


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    csv = image_folder(root)
    return (csv, *train_own_model(root))


def test_five_lines_reach_a_diagnosis_and_a_readout_dfr_fix(own):
    csv, model_file, checkpoint = own
    data = er.csv_splits(csv, image_size=16)
    model = er.load_model(f"{model_file}:Net", checkpoint, data)
    diagnosis = er.diagnose(model, data)
    fixed, metrics = er.fix_last_layer(model, data)
    before = er.evaluate(model, data["test"])
    assert set(diagnosis["layers"]) == {"features", "deep", "model output"}  # the model's children but its head
    assert data["train"].a is None and data["val"].a is not None  # attributes only where the CSV has them
    assert metrics["test"]["worst_group_accuracy"] > before["worst_group_accuracy"] + 0.2
    assert metrics["last_layer"]["labels"] == "none"
    assert er.evaluate(fixed, data["test"]) == metrics["test"]
    assert er.evaluate(model, data["test"]) == before  # the model given is left as it was


def test_fix_last_layer_matches_the_retrain_command(tmp_path):
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    train(cfg, log=lambda _m: None)
    _, model, splits = load_trained(cfg.out)
    for method in ("readout-dfr", "dfr"):
        _, metrics = er.fix_last_layer(model, splits, method)
        command = retrain(cfg.out, method, tmp_path / method, log=lambda _m: None)
        assert metrics["val"] == command["val"] and metrics["test"] == command["test"], method


def test_tensor_splits_with_attributes_on_val_and_test_only():
    g = torch.Generator().manual_seed(0)
    def split(n, known):
        y = torch.randint(2, (n,), generator=g)
        a = torch.where(torch.rand(n, generator=g) < 0.9, y, 1 - y)
        x = torch.randn(n, 3, 8, 8, generator=g) + a.view(-1, 1, 1, 1).float()
        return (x, y, a if known else None)
    data = er.tensor_splits(split(64, False), split(32, True), split(32, True), class_names=["cat", "dog"])
    assert data["train"].a is None and data["val"].n_groups == 4
    assert data["val"].group_names[1] == "y=cat, a=1"
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 2))
    model = er.load_model(model, None, data)
    assert er.evaluate(model, data["train"])["groups_by"] == "label"
    assert er.evaluate(model, data["val"])["groups_by"] == "label and attribute"
    _, metrics = er.fix_last_layer(model, data, "dfr")  # dfr reads val's groups, which exist
    assert set(metrics) == {"val", "test", "last_layer"}
    with pytest.raises(UserError, match="not a last-layer method"):
        er.fix_last_layer(model, data, "erm")
    with pytest.raises(UserError, match="unknown method 'readout-dfrr'"):
        er.fix_last_layer(model, data, "readout-dfrr")


class Items(Dataset):
    """A torch dataset as users write them: dict items, or tuples."""

    def __init__(self, n: int, as_dict: bool, with_attribute: bool):
        self.x, self.y = torch.randn(n, 3, 8, 8), torch.arange(n) % 2
        self.as_dict, self.with_attribute = as_dict, with_attribute

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        a = int(self.y[i]) if self.with_attribute else -1
        return {"image": self.x[i], "label": self.y[i], "attribute": a} if self.as_dict else (self.x[i], self.y[i])


def test_torch_splits_read_tuples_and_dicts():
    data = er.torch_splits(Items(8, False, False), Items(6, True, True), Items(6, True, False))
    assert data["train"].a is None and data["val"].a is not None and data["test"].a is None
    assert torch.equal(data["val"].get_x(2), data["val"].dataset.x[2])
    assert data["train"].info["shape"] == (3, 8, 8) and data["train"].n_classes == 2
    with pytest.raises(UserError, match="items must be"):
        er.torch_splits([1, 2], Items(2, False, False), Items(2, False, False))


def test_train_and_fix_is_one_call(tmp_path):
    result = er.train_and_fix("colored-digits", tmp_path / "runs", model="small-cnn", epochs=1,
                              settings={"data.n_train": 96, "data.n_val": 48, "data.n_test": 48, "data.size": 16,
                                        "model.width": 8, "train.batch_size": 16})
    assert result["method"] == "readout-reweight+readout-dfr" and result["labels_used"] == "none"
    assert (tmp_path / "runs" / "readout-reweight+readout-dfr" / "seed0" / "done").is_file()


def test_every_public_name_has_a_docstring_naming_its_arguments():
    for name in er.__all__:
        fn = getattr(er, name)
        doc = inspect.getdoc(fn)
        assert doc, name
        named = set(re.findall(r"`(\w+)`", doc))
        for parameter in inspect.signature(fn).parameters:
            assert parameter in named, f"{name}: `{parameter}` is not in its docstring"


def test_the_package_imports_without_loading_the_api():
    code = "import sys, earlyreadout; print('earlyreadout.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert Path(er.__file__).name == "__init__.py"
