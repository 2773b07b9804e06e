import math

import pytest
import torch

from earlyreadout.metrics import (
    expected_calibration_error,
    group_accuracy,
    mean_std,
    summarize,
    worst_class_accuracy,
)


def test_group_accuracy_by_hand():
    pred = torch.tensor([0, 1, 1, 0, 1, 0])
    y = torch.tensor([0, 1, 0, 0, 1, 1])
    g = torch.tensor([0, 1, 0, 2, 3, 3])
    acc, counts = group_accuracy(pred, y, g, n_groups=4)
    assert counts.tolist() == [2, 1, 1, 2]
    assert acc.tolist() == [0.5, 1.0, 1.0, 0.5]


def test_empty_group_is_reported_not_dropped():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    y = torch.tensor([0, 1, 0])
    g = torch.tensor([0, 3, 0])  # groups 1 and 2 are empty
    m = summarize(logits, y, g, ["g0", "g1", "g2", "g3"], [(0, 0), (0, 1), (1, 0), (1, 1)], 2)
    assert [grp["n"] for grp in m["groups"]] == [2, 0, 0, 1]
    assert m["groups"][1]["accuracy"] is None
    assert m["worst_group_accuracy"] == 0.5          # over non-empty groups only
    assert m["adjusted_accuracy"] == pytest.approx(0.75)
    assert m["average_accuracy"] == pytest.approx(2 / 3)


def test_worst_class():
    pred, y = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 1])
    assert worst_class_accuracy(pred, y, 2) == pytest.approx(2 / 3)


def test_ece_by_hand():
    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right): bins (0.8,0.9]: acc .5 conf .9; (0.533,0.6]: acc 1 conf .6
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6]])
    y = torch.tensor([0, 1, 1])
    expected = (2 / 3) * abs(0.5 - 0.9) + (1 / 3) * abs(1.0 - 0.6)
    assert expected_calibration_error(probs, y, n_bins=15) == pytest.approx(expected, abs=1e-6)


def test_perfectly_calibrated_is_zero():
    probs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert math.isclose(expected_calibration_error(probs, torch.tensor([0, 1])), 0.0, abs_tol=1e-7)


def test_mean_std_by_hand():
    assert mean_std([0.5, 0.7]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1414213, rel=1e-5),
                                    "values": [0.5, 0.7]}
    assert mean_std([0.25]) == {"mean": 0.25, "std": 0.0, "values": [0.25]}
