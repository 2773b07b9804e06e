"""The generated benchmarks with non-colour shortcuts: shapes-on-texture and small-digits."""

import json

import pytest
import torch

from conftest import tiny_splits
from earlyreadout.cli import main
from earlyreadout.data import DATASETS, load_splits
from earlyreadout.params import resolve

SMALL = {"shapes-on-texture": {"size": 32}, "small-digits": {"size": 16}}
NAMES = list(SMALL)


def splits(name, **options):
    return tiny_splits(name, **{**SMALL[name], **options})


@pytest.mark.parametrize("name", NAMES)
def test_shapes_dtypes_and_names(name):
    s = splits(name)
    for split, d in s.items():
        x = d.tensors()
        assert x.dtype == torch.float32 and x.ndim == 4 and x.shape[1] == 3 and len(x) == len(d.y)
        assert d.y.dtype == torch.long and d.a.dtype == torch.long
        assert tuple(x.shape[1:]) == tuple(d.info["shape"]) and d.info["modality"] == "image"
        assert d.n_classes == 2 and d.n_attributes == 2 and d.split == split and d.name == name
        assert torch.isfinite(x).all()
    assert s["train"].tensors().shape[-1] == SMALL[name]["size"]


@pytest.mark.parametrize("name", NAMES)
def test_generation_is_deterministic_and_seeded(name):
    a, b, c = splits(name), splits(name), splits(name, seed=1)
    for split in ("train", "val", "test"):
        assert torch.equal(a[split].tensors(), b[split].tensors())
        assert torch.equal(a[split].y, b[split].y) and torch.equal(a[split].a, b[split].a)
    assert not torch.equal(a["train"].tensors(), c["train"].tensors())


@pytest.mark.parametrize("name, n_classes", [("shapes-on-texture", 2), ("shapes-on-texture", 3),
                                             ("shapes-on-texture", 4), ("small-digits", 2)])
def test_train_is_correlated_and_eval_is_group_balanced(name, n_classes):
    extra = {"n_classes": n_classes} if name == "shapes-on-texture" else {}
    opts, problems = resolve(DATASETS.get(name).options, {**SMALL[name], **extra, "n_train": 2000,
                                                          "n_val": 32 * n_classes**2, "n_test": 16 * n_classes**2,
                                                          "correlation": 0.9}, name)
    assert not problems
    s = load_splits(name, opts)
    train = s["train"]
    assert train.n_groups == n_classes * n_classes
    assert (train.a == train.y).float().mean().item() == pytest.approx(0.9, abs=0.025)
    assert (train.group_counts() > 0).all()  # every minority group (n_classes - 1 per class) is present
    for split, per_group in (("val", 32), ("test", 16)):
        assert s[split].group_counts().tolist() == [per_group] * n_classes**2


@pytest.mark.parametrize("name", NAMES)
def test_defaults_have_every_group_and_a_small_minority(name):
    d = DATASETS.get(name)
    opts, _ = resolve(d.options, {"n_val": 8, "n_test": 8}, name)
    train = d(**opts).make("train")
    counts = train.group_counts()
    assert (counts > 0).all()
    minority = (train.a != train.y).float().mean().item()
    assert 0.02 < minority < 0.07
    if name == "small-digits":
        assert len(train) == 1000 and tuple(train.info["shape"][1:]) == (34, 28)
    else:
        assert tuple(train.info["shape"]) == (3, 64, 64)


def test_stripe_orientation_is_the_attribute():
    d = splits("shapes-on-texture", noise=0.0, n_classes=2)["test"]
    x = d.tensors().mean(1)
    along_rows = (x[:, 1:, :] - x[:, :-1, :]).abs().mean((1, 2))  # large for horizontal stripes
    along_cols = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((1, 2))
    assert torch.equal((along_cols > along_rows).long(), d.a)


def test_small_digits_mark_sits_in_the_band():
    d = splits("small-digits", noise=0.0)["train"]
    r0, r1, c0, c1 = d.info["spurious_region"]
    assert d.info["core_region"][0] == r1 and d.info["core_region"][1] == d.tensors().shape[2]
    band = d.tensors()[:, 0, r0:r1, c0:c1]
    half = band.shape[-1] // 2
    right = band[:, :, half:].sum((1, 2)) > band[:, :, :half].sum((1, 2))
    assert torch.equal(right.long(), d.a)
    vertical = splits("small-digits", noise=0.0, mark="orientation")["train"]
    band = vertical.tensors()[:, 0, r0:r1]
    assert torch.equal((band[:, -1].sum(1) > 0).long(), vertical.a)  # only a vertical bar reaches the bottom row


def test_list_shows_the_benchmarks(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "shapes-on-texture" in out and "small-digits" in out


@pytest.mark.parametrize("name", NAMES)
def test_one_epoch_of_training_from_the_cli(name, capsys, tmp_path):
    out = tmp_path / "run"
    code = main(["train", "--method", "erm", "--data", name, "--epochs", "1", "--out", str(out),
                 "data.n_train=64", "data.n_val=32", "data.n_test=32", f"data.size={SMALL[name]['size']}",
                 "model.width=8", "train.batch_size=32"])
    printed = capsys.readouterr().out
    assert code == 0 and "test worst-group" in printed and name in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["test"]["groups"]) == 4 and (out / "done").is_file()


def test_the_ceiling_of_a_multi_class_benchmark_balances_every_group(capsys, tmp_path):
    import yaml

    code = main(["compare", "--methods", "ceiling", "--data", "shapes-on-texture", "--epochs", "1",
                 "--out", str(tmp_path), "data.n_classes=3", "data.n_train=90", "data.n_val=27", "data.n_test=27",
                 "data.size=32", "model.width=8", "train.batch_size=32"])
    assert code == 0
    config = yaml.safe_load((tmp_path / "ceiling" / "seed0" / "config.yaml").read_text())
    assert config["data"]["correlation"] == pytest.approx(1 / 3)
