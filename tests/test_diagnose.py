"""Shortcut diagnosis: minority groups, flagging quality, cross-fitted readouts, the diagnose command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from earlyreadout.cli import main
from earlyreadout.data.base import TensorGroupedDataset
from earlyreadout.explain.diagnose import (
    CSV_COLUMNS,
    MODEL_OUTPUT,
    diagnose_model,
    flagging_quality,
    minority_groups,
)
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.readout.fit import FoldedReadouts, fold_ids
from earlyreadout.train.engine import train


def grouped(counts: list[int], class_names=("a", "b"), attribute_names=("p", "q")) -> TensorGroupedDataset:
    n_att = len(attribute_names)
    g = torch.cat([torch.full((c,), k) for k, c in enumerate(counts)])
    return TensorGroupedDataset(x=torch.zeros(len(g), 1), name="t", split="train", y=g // n_att, a=g % n_att,
                                class_names=list(class_names), attribute_names=list(attribute_names), info={})


def test_minority_groups_are_rare_within_their_label():
    waterbirds = grouped([3498, 184, 56, 1057])  # landbird x {land, water}, waterbird x {land, water}
    assert minority_groups(waterbirds) == [1, 2]
    celeba = grouped([71629, 66874, 22880, 1387])  # non-blond x {female, male}, blond x {female, male}
    assert minority_groups(celeba) == [3]
    assert minority_groups(grouped([10, 6, 5, 10]), ratio=0.5) == []
    assert minority_groups(grouped([10, 6, 5, 10]), ratio=0.7) == [1, 2]
    assert minority_groups(grouped([10, 0, 3, 10])) == [2]  # an empty group is no instance to flag


def test_no_minority_groups_without_attributes():
    data = TensorGroupedDataset(x=torch.zeros(4, 1), name="t", split="train", y=torch.tensor([0, 0, 0, 1]),
                                a=None, class_names=["a", "b"], attribute_names=None, info={})
    assert minority_groups(data) == []


def test_flagging_quality_against_hand_computed_values():
    score = torch.tensor([0.9, 0.0, 0.4, 0.0, 0.6])
    positive = torch.tensor([1, 0, 1, 0, 0])
    # positive/negative pairs ranked right: (0.9 > all three) 3, (0.4 > 0, 0 but < 0.6) 2 -> 5/6
    # precision at each positive: 0.9 -> 1/1, 0.4 -> 2/3 -> AP = (1 + 2/3) / 2
    q = flagging_quality(score, positive)
    assert q["auc"] == pytest.approx(5 / 6)
    assert q["average_precision"] == pytest.approx(5 / 6)
    assert q["positive_rate"] == pytest.approx(0.4)
    assert flagging_quality(score, torch.zeros(5)) == {"auc": None, "average_precision": None}


def test_fold_ids_are_balanced_and_seeded():
    ids = fold_ids(10, 3, seed=1)
    assert torch.bincount(ids).tolist() == [4, 3, 3]
    assert torch.equal(ids, fold_ids(10, 3, seed=1)) and not torch.equal(ids, fold_ids(10, 3, seed=2))
    assert fold_ids(5, 1, 0).tolist() == [0] * 5


class CountingCNN(SmallCNN):
    calls = 0

    def forward(self, x):
        CountingCNN.calls += 1
        return super().forward(x)


@pytest.mark.parametrize("head", ["linear", "conv"])
def test_one_forward_per_batch_feeds_every_layer_and_fold(digits_splits, head):
    torch.manual_seed(0)
    model = CountingCNN(3, 2, width=4)
    train = digits_splits["train"]
    layers = ["block1", "block2", "block4"]
    with FoldedReadouts(model, layers, 2, train.tensors()[:2], folds=3, head=head, depth=1, width=4) as ro:
        CountingCNN.calls = 0
        probs, logits = ro.score(train, batch_size=32)
        assert CountingCNN.calls == 3  # 96 instances / 32
        assert set(probs) == set(layers) and all(p.shape == (96, 2) for p in probs.values())
        assert torch.allclose(logits, model.eval()(train.tensors()), atol=1e-5)
        CountingCNN.calls = 0
        ro.fit(train, epochs=2, batch_size=32)
        assert CountingCNN.calls == (3 if head == "linear" else 6)  # pooled features are cached across epochs
    assert all(not m._forward_hooks for m in model.modules())


def test_fitting_leaves_the_model_unchanged(digits_splits):
    torch.manual_seed(0)
    model = SmallCNN(3, 2, width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with FoldedReadouts(model, ["block1", "block3"], 2, digits_splits["train"].tensors()[:2], folds=2) as ro:
        losses = ro.fit(digits_splits["train"], epochs=3, batch_size=32, lr=0.05)
    assert len(losses) == 3
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training


def test_cross_fitting_scores_train_instances_with_heads_that_never_saw_them(digits_splits):
    torch.manual_seed(0)
    model = SmallCNN(3, 2, width=4)
    train = digits_splits["train"]
    with FoldedReadouts(model, ["block4"], 2, train.tensors()[:2], folds=2, seed=3) as ro:
        ro.fit(train, epochs=1, batch_size=32)
        own, _ = ro.score(train, own_fold=True)
        pooled, _ = ro.score(train)
        folds = fold_ids(len(train), 2, 3)
        model.eval()(train.tensors())
        f = ro.readouts[0].features()["block4"]
        by_fold = [r.head("block4")(f).softmax(1) for r in ro.readouts]
    expected = torch.where((folds == 0)[:, None], by_fold[0], by_fold[1])
    assert torch.allclose(own["block4"], expected, atol=1e-5)
    assert torch.allclose(pooled["block4"], (by_fold[0] + by_fold[1]) / 2, atol=1e-5)


def test_diagnose_model_summary_and_rows(digits_splits):
    torch.manual_seed(0)
    model = SmallCNN(3, 2, width=4)
    summary, rows = diagnose_model(model, digits_splits, ["block1", "block2"], epochs=2, folds=2,
                                   batch_size=32, log=lambda _m: None)
    assert list(summary["layers"]) == ["block1", "block2", MODEL_OUTPUT]
    assert summary["minority_groups"] == ["y=<5, a=green", "y=>=5, a=red"]
    entry = summary["layers"]["block1"]
    assert set(entry["splits"]) == {"train", "val", "test"}
    assert 0.0 <= entry["flagging"]["auc"] <= 1.0
    assert len(entry["splits"]["val"]["groups"]) == 4
    assert len(rows) == 3 * (96 + 48 + 48)
    assert set(rows[0]) == set(CSV_COLUMNS)
    wrong = [r for r in rows if not r["correct"]]
    assert all(r["score"] == r["margin"] for r in wrong)
    assert all(r["score"] == 0 for r in rows if r["correct"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("diag"), train={"epochs": 1})
    train(cfg, log=lambda _m: None)
    return cfg.out


def test_diagnose_command_writes_json_csv_and_plots(trained_run, tmp_path, capsys):
    out = tmp_path / "diag"
    code = main(["diagnose", "--run", trained_run, "--layer", "block1", "--layer", "block3", "--epochs", "1",
                 "--head", "mlp", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "diagnosis.json").read_text())
    assert summary["data"] == "colored-digits" and summary["head"] == "mlp"
    assert list(summary["layers"]) == ["block1", "block3", MODEL_OUTPUT]
    with (out / "diagnosis.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 3 * (96 + 48 + 48)
    assert (out / "diagnosis_scores.png").stat().st_size > 0
    assert (out / "diagnosis_auc.png").stat().st_size > 0
    assert "diagnosis written to" in capsys.readouterr().out


def test_diagnose_defaults_to_the_model_stages(trained_run):
    from earlyreadout.explain.diagnose import diagnose

    summary = diagnose(trained_run, epochs=1, log=lambda _m: None)
    assert list(summary["layers"]) == ["block1", "block2", "block3", "block4", MODEL_OUTPUT]


def test_diagnose_user_errors(trained_run, tmp_path, capsys):
    assert main(["diagnose", "--run", trained_run, "--layer", "blok2"]) == 2
    assert "did you mean 'block2'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["diagnose", "--run", str(tmp_path / "empty")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    (tmp_path / "untrained").mkdir()
    (tmp_path / "untrained" / "config.yaml").write_text((Path(trained_run) / "config.yaml").read_text())
    assert main(["diagnose", "--run", str(tmp_path / "untrained")]) == 2
    assert "has no trained model" in capsys.readouterr().err
    assert main(["diagnose", "--run", trained_run, "--head", "conv2"]) == 2
    assert "one of 'linear', 'mlp', 'conv'; got 'conv2' instead (did you mean 'conv'?)" in capsys.readouterr().err
    assert main(["diagnose", "--run", trained_run, "--folds", "0"]) == 2
    assert "'folds' parameter of diagnose must be an int in the range [1, inf)" in capsys.readouterr().err
