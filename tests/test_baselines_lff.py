"""LfF's generalized cross-entropy and relative-difficulty weights against hand-computed values."""

import math

import pytest
import torch

from earlyreadout.methods.labelfree.lff import generalized_ce, relative_difficulty


def test_generalized_ce_hand_made():
    logits = torch.tensor([[math.log(3.0), 0.0]])  # p_y = 3/4
    value = generalized_ce(logits, torch.tensor([0]), 0.7)
    assert value.item() == pytest.approx(0.7 * 0.75**0.7 * math.log(4 / 3))


def test_generalized_ce_has_q_times_the_gradient_of_the_paper_form():
    logits = torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.1, -0.4]], requires_grad=True)
    y, q = torch.tensor([2, 0]), 0.4
    (surrogate,) = torch.autograd.grad(generalized_ce(logits, y, q).sum(), logits)
    p_y = torch.softmax(logits, 1).gather(1, y.unsqueeze(1))
    (paper,) = torch.autograd.grad(((1 - p_y**q) / q).sum(), logits)
    assert torch.allclose(surrogate, q * paper, atol=1e-6)


def test_relative_difficulty_hand_made():
    weights = relative_difficulty(torch.tensor([1.0, 3.0, 0.0]), torch.tensor([3.0, 1.0, 0.0]))
    assert torch.allclose(weights, torch.tensor([0.25, 0.75, 0.0]))
