"""The defining computations of the label-free group-inference methods (SPARE, EIIL) against hand-made cases.
"""

import pytest
import torch

from earlyreadout.methods.labelfree.eiil import eiil_objective, infer_environments, scale_gradients
from earlyreadout.methods.labelfree.spare import cluster_classwise
from earlyreadout.methods.sample_weights import spare_weights


def test_spare_weights_hand_made():
    # class 0: cluster 0 has 2 examples, cluster 1 has 1, power 2 -> 1/4, 1/4, 1, normalised by 3/2;
    # class 1: two clusters of one, power 1 -> 1, 1, normalised by 2
    y, clusters = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 0, 1, 0, 1])
    weights = spare_weights(y, clusters, torch.tensor([2.0, 1.0]))
    assert weights.tolist() == pytest.approx([1 / 6, 1 / 6, 2 / 3, 0.5, 0.5])


def test_spare_clusters_within_each_class_and_scores_the_separation():
    outputs = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [1.0, 1.0], [1.0, 1.0]])
    y = torch.tensor([0, 0, 0, 1, 1])
    clusters, silhouettes = cluster_classwise(outputs, y, 2, seed=0)
    assert clusters[0] == clusters[1] != clusters[2]  # the far example is its own cluster
    # silhouette of class 0: the near pair scores 1 - 0.1 / ~7.07 each, the lone example 0 -> mean ~0.6286
    far = (torch.tensor([5.0, 5.0]) - outputs[:2]).norm(dim=1)
    expected = ((1 - 0.1 / far[0]) + (1 - 0.1 / far[1])) / 3
    assert silhouettes[0].item() == pytest.approx(expected.item(), rel=1e-6)
    assert clusters[3] == clusters[4] and silhouettes[1] == 1.0  # identical outputs: one cluster


def test_eiil_scale_gradient_matches_autograd_and_the_objective_is_hand_made():
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.1], [-0.5, 0.4]])
    y = torch.tensor([1, 0, 0])
    scale = torch.ones((), requires_grad=True)
    per_example = torch.nn.functional.cross_entropy(logits * scale, y, reduction="none")
    by_autograd = torch.stack([torch.autograd.grad(v, scale, retain_graph=True)[0] for v in per_example])
    assert torch.allclose(scale_gradients(logits, y), by_autograd, atol=1e-6)
    # r = (1, -1): a hard split puts each in its own environment, means 1/2 and -1/2 -> -(1/4 + 1/4) / 2
    r = torch.tensor([1.0, -1.0])
    assert eiil_objective(r, torch.tensor([50.0, -50.0])).item() == pytest.approx(-0.25)
    assert eiil_objective(r, torch.zeros(2)).item() == pytest.approx(0.0)  # an even split hides it


def test_eiil_separates_examples_whose_risks_pull_in_opposite_directions():
    # two confidently right examples (negative scale gradient) and two confidently wrong ones (positive)
    logits = torch.tensor([[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [4.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    env = infer_environments(logits, y, steps=500, lr=0.1, seed=0)
    assert env[0] == env[1] != env[2] == env[3]
