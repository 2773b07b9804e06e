"""The shortcut verdict: per-layer evidence and the decision against hand-computed cases, and the diagnosis
recording them with and without train attribute labels."""

from __future__ import annotations

import json

import pytest
import torch

from earlyreadout.cli import main
from earlyreadout.data.base import TensorGroupedDataset
from earlyreadout.explain.diagnose import MODEL_OUTPUT, diagnose_model
from earlyreadout.explain.verdict import LayerEvidence, describe, layer_evidence, verdict
from earlyreadout.models.cnn import SmallCNN


def evidence(layer: str = "block1", n: int = 1000, errors: int = 30, error_margin: float | None = 0.9,
             correct_margin: float | None = 0.9) -> LayerEvidence:
    return LayerEvidence(layer, n, errors, errors, error_margin, correct_margin, [errors // 2, errors - errors // 2],
                         [n // 2, n - n // 2])


def test_layer_evidence_hand_computed():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    pred = torch.tensor([0, 0, 1, 1, 1, 1, 1, 0])
    margin = torch.tensor([0.9, 0.7, 0.8, 0.2, 0.6, 1.0, 0.4, 0.5])
    e = layer_evidence("block2", y, pred, margin, 3)
    # wrong: indices 2 (0.8), 3 (0.2), 7 (0.5); confident (>= 0.5): 2 (class 0) and 7 (class 1)
    assert (e.n, e.errors, e.confident_errors) == (8, 3, 2)
    assert e.error_margin == pytest.approx(0.5)  # median of 0.8, 0.2, 0.5
    assert e.correct_margin == pytest.approx(0.7)  # median of 0.9, 0.7, 0.6, 1.0, 0.4
    assert e.confident_by_class == [1, 1, 0] and e.class_counts == [4, 4, 0]
    assert e.error_share == pytest.approx(3 / 8) and e.confident_share == pytest.approx(2 / 8)
    assert e.confidence_ratio == pytest.approx(0.5 / 0.7)
    assert e.top_class == (0, 0.5)


def test_no_errors_means_no_error_margin_and_no_flag():
    y = torch.tensor([0, 1, 0, 1])
    e = layer_evidence("block1", y, y.clone(), torch.full((4,), 0.9), 2)
    assert (e.errors, e.error_margin, e.confidence_ratio, e.top_class) == (0, None, None, None)
    assert not e.flags_shortcut()


@pytest.mark.parametrize("errors, n, error_margin, correct_margin, flags", [
    (30, 1000, 0.9, 0.9, True),     # 3 % wrong, as sure as where right: the shortcut pattern
    (30, 1000, 0.26, 0.40, True),   # ratio 0.65: the threshold itself counts
    (30, 1000, 0.25, 0.40, False),  # ratio 0.625: errors less sure than right answers, a weak readout
    (9, 1000, 0.9, 0.9, False),     # fewer than 10 errors
    (4, 1000, 0.9, 0.9, False),     # 0.4 %: under 0.5 % of train
    (250, 1000, 0.9, 0.9, False),   # 25 %: not a minority the shortcut contradicts
    (249, 1000, 0.9, 0.9, True),
    (480, 1000, 0.1, 0.1, False),   # a chance-level readout: half wrong, equally unsure everywhere
])
def test_the_shortcut_pattern_hand_cases(errors, n, error_margin, correct_margin, flags):
    assert evidence(errors=errors, n=n, error_margin=error_margin, correct_margin=correct_margin).flags_shortcut() is flags


def test_the_verdict_names_the_surest_flagging_layer_and_the_next_command():
    layers = [evidence("block1", errors=30, error_margin=0.8, correct_margin=0.9),
              evidence("block2", errors=40, error_margin=0.9, correct_margin=0.9),
              evidence("block4", errors=10, error_margin=0.2, correct_margin=0.9)]
    v = verdict(layers, "runs/erm/")
    assert v.shortcut and v.layer == "block2"
    assert v.next_command == "earlyreadout retrain --run runs/erm/ --method readout-dfr --out runs/erm-readout-dfr"
    assert v.line.startswith("shortcut likely: the block2 readout is wrong on 40 training instances (4.0%)")
    assert v.line.endswith(f"next: `{v.next_command}`")
    assert v.to_dict()["rule"]["min_confidence_ratio"] == 0.65


def test_no_flagging_layer_is_no_shortcut_evidence_and_no_command():
    v = verdict([evidence(errors=480, error_margin=0.1, correct_margin=0.1), evidence(errors=3)], "runs/erm")
    assert not v.shortcut and v.layer is None and v.next_command is None
    assert v.line.startswith("no shortcut evidence")


def test_describe_hand_case():
    e = LayerEvidence("block1", 1000, 30, 24, 0.8, 0.9, [20, 4], [500, 500])
    assert describe(e, ["cat", "dog"]) == (
        "wrong on 30 of 1000 training instances (3.0%), 24 confidently (margin >= 0.5); median margin 0.80 where "
        "wrong vs 0.90 where right (ratio 0.89); confident ones by class: 'cat' 20, 'dog' 4  <- shortcut pattern")


def test_diagnosis_without_train_attributes_records_evidence_and_verdict(digits_splits):
    train = digits_splits["train"]
    blind = TensorGroupedDataset(x=train.tensors(), name=train.name, split="train", y=train.y, a=None,
                                 class_names=train.class_names, attribute_names=None, info=train.info)
    torch.manual_seed(0)
    lines = []
    summary, rows = diagnose_model(SmallCNN(3, 2, width=4), {**digits_splits, "train": blind}, ["block1", "block2"],
                                   epochs=2, batch_size=32, log=lines.append, run="runs/mine")
    for layer in ("block1", "block2"):
        entry = summary["layers"][layer]
        assert "flagging" not in entry  # the ROC-AUC needs attribute labels
        wrong = [r for r in rows if r["split"] == "train" and r["layer"] == layer and not r["correct"]]
        assert entry["evidence"]["errors"] == len(wrong) and entry["evidence"]["n"] == len(train)
        assert entry["evidence"]["confident_errors"] == sum(r["margin"] >= 0.5 for r in wrong)
    assert "evidence" not in summary["layers"][MODEL_OUTPUT]
    assert summary["verdict"]["line"] in lines[-1] and lines[-1].startswith("verdict: ")
    assert isinstance(summary["verdict"]["shortcut"], bool)


def test_the_diagnose_command_prints_and_records_the_verdict_with_attributes(tmp_path, capsys):
    run = tmp_path / "erm"
    tiny = ["data.n_train=96", "data.n_val=48", "data.n_test=48", "data.size=16", "model.width=4"]
    assert main(["train", "--epochs", "1", "--batch-size", "32", *tiny, "--out", str(run)]) == 0
    assert main(["diagnose", "--run", str(run), "--layer", "block1", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((run / "diagnosis.json").read_text())
    assert "auc" in summary["layers"]["block1"]["flagging"]  # kept where train has attributes
    assert f"verdict: {summary['verdict']['line']}" in out
    assert "wrong on" in out and "training instances" in out
