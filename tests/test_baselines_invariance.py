"""The defining computations of IRM, MMD and CORAL against hand-computed cases."""

import math

import pytest
import torch

from earlyreadout.methods.invariance.feature_matching import (
    coral_distance,
    gaussian_mmd,
    irm_penalty,
    pairwise_penalty,
    scale_gradient,
)

LN3 = math.log(3.0)


def test_irm_scale_gradient_and_penalty_hand_made():
    # d/ds CE(s z, y) at s = 1 is <z, softmax(z)> - z_y: softmax(ln 3, 0) = (3/4, 1/4)
    first = torch.tensor([[LN3, 0.0]])
    assert scale_gradient(first, torch.tensor([0])).item() == pytest.approx(0.75 * LN3 - LN3)
    logits = torch.tensor([[LN3, 0.0], [0.0, LN3]])
    y = torch.tensor([0, 0])
    penalty = irm_penalty(logits, y, torch.tensor([True, False]))
    assert penalty.item() == pytest.approx((-0.25 * LN3) * (0.75 * LN3))  # second half: <z, p> - 0 = 3/4 ln 3
    assert irm_penalty(logits, y, torch.tensor([True, True])).item() == 0.0  # an empty half adds nothing


def test_irm_penalty_has_a_gradient_through_the_logits():
    logits = torch.tensor([[LN3, 0.0], [0.0, LN3]], requires_grad=True)
    irm_penalty(logits, torch.tensor([0, 0]), torch.tensor([True, False])).backward()
    assert logits.grad.abs().sum() > 0


def test_gaussian_mmd_hand_made():
    x, y = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    assert gaussian_mmd(x, y, gammas=(1.0,)).item() == pytest.approx(2 - 2 * math.exp(-1))
    assert gaussian_mmd(x, x).item() == pytest.approx(0.0, abs=1e-6)


def test_coral_distance_hand_made():
    # means 1 and 2, unbiased variances 2 and 8: (1 - 2)^2 + (2 - 8)^2
    x, y = torch.tensor([[0.0], [2.0]]), torch.tensor([[0.0], [4.0]])
    assert coral_distance(x, y).item() == pytest.approx(37.0)


def test_pairwise_penalty_averages_pairs_and_skips_single_example_domains():
    features = torch.tensor([[0.0], [2.0], [0.0], [4.0], [9.0], [0.0], [2.0]])
    domain = torch.tensor([0, 0, 1, 1, 2, 3, 3])  # domain 2 has one example; 0 and 3 are equal
    # pairs (0,1): 37, (0,3): 0, (1,3): 37
    assert pairwise_penalty(features, domain, coral_distance).item() == pytest.approx(74 / 3)
    assert pairwise_penalty(features[:2], domain[:2], coral_distance).item() == 0.0
