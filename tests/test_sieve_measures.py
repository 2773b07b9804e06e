import json
import math

import pytest
import torch

from conftest import tiny_config, tiny_splits
from earlyreadout.models.inference import flip_rate
from earlyreadout.readout.sieve_measures import (
    ForgetRecord,
    contradicts,
    majority_attributes,
    update_norm,
    update_ratio,
)
from earlyreadout.train.engine import train


def quiet(_msg: str) -> None:
    pass


def test_update_norm_and_ratio_hand_computed():
    before = [torch.zeros(2), torch.zeros(1)]
    after = [torch.tensor([3.0, 0.0]), torch.tensor([4.0])]
    assert update_norm(before, after) == pytest.approx(5.0)
    assert update_ratio(2.0, 4.0) == 0.5
    assert math.isnan(update_ratio(1.0, 0.0))


def test_majority_attributes_and_minority_examples():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    a = torch.tensor([1, 1, 0, 0, 0, 1])
    majority = majority_attributes(y, a, n_classes=2, n_attributes=2)
    assert majority.tolist() == [1, 0]
    assert contradicts(y, a, majority).tolist() == [False, False, True, False, False, True]


def test_forget_record_summary_hand_computed():
    record = ForgetRecord()
    for r in (1.0, 2.0, 3.0, float("nan")):
        record.add_ratio(r)
    minority = torch.tensor([True, False, False, True])
    record.add_correct("before", torch.tensor([True, True, True, False]), minority)
    record.add_correct("after", torch.tensor([False, True, False, False]), minority)
    out = record.summary()
    assert out["forget_update_ratio_median"] == pytest.approx(2.0)
    assert out["forget_update_ratio_p90"] == pytest.approx(2.8)  # linear interpolation between 2 and 3
    assert out["readout_acc_before_forget_minority"] == 0.5
    assert out["readout_acc_before_forget_majority"] == 1.0
    assert out["readout_acc_after_forget_minority"] == 0.0
    assert out["readout_acc_after_forget_majority"] == 0.5
    assert ForgetRecord().summary() == {}


def test_flip_rate_hand_computed():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0], [0.0, 5.0]])
    swapped = torch.tensor([[0.0, 1.0], [0.0, 1.0], [3.0, 1.0], [5.0, 0.0]])
    assert flip_rate(logits, swapped) == 0.5


@pytest.mark.parametrize("name", ["colored-digits", "dominoes"])
def test_a_counterfactual_split_changes_the_attribute_and_nothing_else(name):
    val = tiny_splits(name, **({"size": 16} if name == "colored-digits" else {"size": 8}))["val"]
    swapped = val.counterfactual()
    assert torch.equal(swapped.y, val.y) and torch.equal(swapped.a, (val.a + 1) % val.n_attributes)
    changed = (swapped.x - val.x).abs().sum(1) > 1e-6  # per pixel
    assert changed.any()
    if name == "dominoes":  # the digit (bottom half) is the same image
        assert not changed[:, val.x.shape[2] // 2:].any()
    else:  # the tint moves only where there is ink: the noise and the digit are the same draws
        assert changed.float().mean() < 0.7


def test_the_small_digits_benchmark_has_no_counterfactual():
    assert tiny_splits("small-digits")["val"].counterfactual is None


def test_sieve_and_erm_log_the_forget_measures_and_counterfactual_reliance(tmp_path):
    train(tiny_config(tmp_path / "sieve", "sieve", hp={"forget_every": 2, "readout_width": 8, "probe": False}),
          log=quiet)
    rows = [json.loads(r) for r in (tmp_path / "sieve" / "run" / "log.jsonl").read_text().splitlines()]
    for row in rows:
        m = row["measures"]
        assert m["forget_update_ratio_median"] > 0 and m["forget_update_ratio_p90"] >= m["forget_update_ratio_median"]
        for when in ("before", "after"):
            for part in ("majority", "minority"):
                assert 0.0 <= m[f"readout_acc_{when}_forget_{part}"] <= 1.0
        assert 0.0 <= m["counterfactual_reliance"] <= 1.0
    train(tiny_config(tmp_path / "erm", "erm"), log=quiet)
    rows = [json.loads(r) for r in (tmp_path / "erm" / "run" / "log.jsonl").read_text().splitlines()]
    assert all(set(r["measures"]) == {"counterfactual_reliance"} for r in rows)
