"""Scores and weights against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from earlyreadout.readout.scores import confident_error, margin, probability_outputs, readout_outputs
from earlyreadout.readout.weights import error_weights

PROBS = torch.tensor([[0.7, 0.2, 0.1], [0.4, 0.6, 0.0], [0.1, 0.3, 0.6]])
Y = torch.tensor([0, 0, 1])  # right, wrong (margin 0.2), wrong (margin 0.3)


def test_margin_is_top1_minus_top2():
    assert margin(PROBS).tolist() == pytest.approx([0.5, 0.2, 0.3])


def test_margin_of_two_classes_is_absolute_difference():
    probs = torch.tensor([[0.9, 0.1], [0.35, 0.65]])
    assert margin(probs).tolist() == pytest.approx([0.8, 0.3])


def test_confident_error_is_margin_on_errors_and_zero_on_hits():
    assert confident_error(PROBS, Y).tolist() == pytest.approx([0.0, 0.2, 0.3])


def test_error_weights_exp_beta_m_alpha_on_errors_only():
    w = error_weights(PROBS, Y, alpha=0.5, beta=2.0)
    assert w.tolist() == pytest.approx([1.0, math.exp(2.0 * 0.2**0.5), math.exp(2.0 * 0.3**0.5)])


def test_error_weights_reference_defaults():
    probs = torch.tensor([[0.2, 0.8], [0.8, 0.2]])
    w = error_weights(probs, torch.tensor([0, 0]), alpha=0.05, beta=4.0)
    assert w.tolist() == pytest.approx([math.exp(4.0 * 0.6**0.05), 1.0])


def test_a_tie_is_an_error_of_margin_zero_with_weight_one():
    probs = torch.tensor([[0.5, 0.5]])
    y = torch.tensor([1])  # argmax picks class 0
    assert confident_error(probs, y).tolist() == [0.0]
    assert error_weights(probs, y, alpha=0.1, beta=3.0).tolist() == [1.0]


def test_readout_outputs_from_logits():
    logits = torch.tensor([[0.0, math.log(3.0)], [math.log(4.0), 0.0]])  # probs (.25, .75), (.8, .2)
    out = readout_outputs(logits, torch.tensor([0, 0]))
    assert out["probs"].flatten().tolist() == pytest.approx([0.25, 0.75, 0.8, 0.2])
    assert out["pred"].tolist() == [1, 0]
    assert out["correct"].tolist() == [False, True]
    assert out["margin"].tolist() == pytest.approx([0.5, 0.6])
    assert out["confident_error"].tolist() == pytest.approx([0.5, 0.0])


def test_probability_outputs_match_readout_outputs():
    logits = torch.randn(5, 3)
    y = torch.randint(3, (5,))
    a, b = readout_outputs(logits, y), probability_outputs(logits.softmax(1), y)
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float())
