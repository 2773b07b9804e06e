"""The defining computations of Mixup and LISA (which pairs are mixed, and how) against hand-made cases."""

import numpy as np
import pytest
import torch

from earlyreadout.methods.mixing.mixed_training import lisa_pairs, mix, mixup_pairs


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_mix_weighs_each_row_by_its_own_lambda():
    first, second = torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    mixed = mix(first, second, torch.tensor([0.25, 1.0], dtype=torch.float64))
    assert torch.equal(mixed, torch.tensor([[0.25, 0.75], [1.0, 0.0]]))


def test_mixup_pairs_each_example_with_a_permutation_under_one_weight():
    first, second, lam = mixup_pairs(6, 0.2, rng())
    assert torch.equal(first, torch.arange(6)) and sorted(second.tolist()) == list(range(6))
    assert len(lam.unique()) == 1 and 0.0 <= lam[0] <= 1.0
    assert torch.equal(mixup_pairs(3, 0.0, rng())[2], torch.ones(3, dtype=torch.float64))  # alpha 0: none


@pytest.mark.parametrize("same_label, expected", [
    (True, [{0, 1}, {2, 3}]),  # within a label, across attributes
    (False, [{0, 2}, {1, 3}]),  # within an attribute, across labels
])
def test_lisa_mixes_within_label_or_within_attribute(same_label, expected):
    y, a = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1])
    first, second, lam = lisa_pairs(y, a, same_label, 2.0, rng())
    assert len(first) == 4 and lam.shape == (4,)
    pairs = {frozenset((f, s)) for f, s in zip(first.tolist(), second.tolist())}
    assert pairs == {frozenset(p) for p in expected}


def test_lisa_pairs_up_to_the_smaller_side_and_repeats_until_the_batch_is_full():
    # label 0 has attributes 0 (examples 0, 1) and 1 (example 2): one pair per round, between 0 and 2;
    # label 1 has one attribute and gives nothing; four rounds fill the batch of four
    y, a = torch.tensor([0, 0, 0, 1]), torch.tensor([0, 0, 1, 1])
    first, second, _ = lisa_pairs(y, a, True, 2.0, rng())
    assert {frozenset((f, s)) for f, s in zip(first.tolist(), second.tolist())} == {frozenset((0, 2))}
    assert len(first) == 4


def test_lisa_falls_back_to_the_plain_batch_when_nothing_can_be_mixed():
    y, a = torch.tensor([0, 1, 0]), torch.tensor([1, 1, 1])  # one attribute: no intra-label pair exists
    first, second, lam = lisa_pairs(y, a, True, 2.0, rng())
    assert torch.equal(first, second) and torch.equal(first, torch.arange(3)) and (lam == 1).all()
    y, a = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 0, 1])  # each attribute holds one label
    first, second, _ = lisa_pairs(y, a, False, 2.0, rng())
    assert torch.equal(first, second)
