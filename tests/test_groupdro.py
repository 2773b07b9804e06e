import math

import pytest
import torch
from torch import nn

from conftest import tiny_config
from earlyreadout.data.base import TensorGroupedDataset
from earlyreadout.data.loader import BatchLoader
from earlyreadout.distributed import DistInfo
from earlyreadout.errors import UserError
from earlyreadout.methods.base import Context
from earlyreadout.methods.robust.group_weights import group_sums, update_group_weights
from earlyreadout.methods.robust.groupdro import GroupDRO
from earlyreadout.methods.sample_weights import group_balanced_weights
from earlyreadout.params import resolve
from earlyreadout.train.engine import build_run


def test_group_sums_hand_made():
    losses = torch.tensor([1.0, 3.0, 2.0, 4.0, 5.0])
    g = torch.tensor([0, 0, 1, 3, 3])
    sums, counts = group_sums(losses, g, 4)
    assert sums.tolist() == [4.0, 2.0, 0.0, 9.0]
    assert counts.tolist() == [2.0, 1.0, 0.0, 2.0]


def test_weights_move_towards_high_loss_groups():
    # q = 1/4 each, group losses 1, 2, (absent), 3, eta 0.5:
    # factors e^0.5, e^1, 1, e^1.5; sum 9.850692 -> 0.167405, 0.276004, 0.101536, 0.455054
    q = torch.full((4,), 0.25, dtype=torch.float64)
    new = update_group_weights(q, torch.tensor([1.0, 2.0, 0.0, 3.0], dtype=torch.float64),
                               torch.tensor([True, True, False, True]), eta=0.5)
    assert new.tolist() == pytest.approx([0.167405, 0.276004, 0.101536, 0.455054], abs=1e-6)


def test_group_adjustment_adds_c_over_sqrt_n():
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    adjustment = 2.0 / torch.tensor([4.0, 1.0], dtype=torch.float64).sqrt()  # C=2, n_g = 4, 1 -> 1, 2
    new = update_group_weights(q, torch.zeros(2, dtype=torch.float64), torch.tensor([True, True]), 1.0,
                               adjustment)
    assert new.tolist() == pytest.approx([math.e / (math.e + math.e**2), math.e**2 / (math.e + math.e**2)])


def test_group_balanced_weights_hand_made():
    # groups 0 (3 examples), 1 (1), 2 (absent), 3 (1): each present group's weights sum to 1
    weights = group_balanced_weights(torch.tensor([0, 0, 0, 1, 3]), 4)
    assert weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0, 1.0])


@pytest.mark.parametrize("balanced", [True, False])
def test_balanced_sampling_draws_every_group_equally_often(digits_splits, balanced):
    train_split = digits_splits["train"]
    hp, problems = resolve(GroupDRO.hparams, {"balanced_sampling": balanced}, "groupdro")
    assert not problems
    loader = BatchLoader(train_split, 8, shuffle=True)
    ctx = Context(n_classes=2, n_groups=train_split.n_groups, train=train_split, train_loader=loader,
                  example_input=None, device=torch.device("cpu"))
    GroupDRO(ZeroLogits(), hp, ctx)
    drawn = []
    for epoch in range(20):
        loader.set_epoch(epoch)
        drawn.append(train_split.g[loader.order()])
    drawn = torch.cat(drawn)
    share = torch.bincount(drawn, minlength=train_split.n_groups).double() / len(drawn)
    natural = torch.bincount(train_split.g, minlength=train_split.n_groups).double() / len(train_split)
    if balanced:
        assert share.tolist() == pytest.approx([0.25] * 4, abs=0.03)
    else:
        assert share.tolist() == pytest.approx(natural.tolist(), abs=1e-9)
        assert natural.min() < 0.15  # the plain order keeps the training set's imbalance


class ZeroLogits(nn.Module):
    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x):
        return self.bias.expand(len(x), 2)


def test_update_moves_q_and_weights_the_loss(digits_splits):
    train_split = digits_splits["train"]
    hp, problems = resolve(GroupDRO.hparams, {"eta": 1.0, "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0},
                           "groupdro")
    assert not problems
    ctx = Context(n_classes=2, n_groups=train_split.n_groups, train=train_split,
                  train_loader=BatchLoader(train_split, 8), example_input=None, device=torch.device("cpu"))
    method = GroupDRO(ZeroLogits(), hp, ctx)
    # hand-made batch: group 0 twice with labels 0, group 3 once with label 1; zero logits -> CE = ln 2 each
    batch = {"x": torch.zeros(3, 1), "y": torch.tensor([0, 0, 1]), "g": torch.tensor([0, 0, 3])}
    stats = method.update(batch, 0)
    f = math.exp(math.log(2))  # = 2: the factor of each present group
    expected = torch.tensor([0.25 * f, 0.25, 0.25, 0.25 * f])
    expected /= expected.sum()
    assert method.q.tolist() == pytest.approx(expected.tolist())
    assert stats["loss"] == pytest.approx(math.log(2) * (expected[0] + expected[3]).item())
    # gradient of q0 * mean(CE of group 0) + q3 * CE(group 3) w.r.t. the two logits' shared bias:
    # d CE / d b = softmax - onehot = (0.5 - 1, 0.5) for y=0 and (0.5, 0.5 - 1) for y=1
    grad = expected[0] * torch.tensor([-0.5, 0.5]) + expected[3] * torch.tensor([0.5, -0.5])
    assert method.network.bias.detach().tolist() == pytest.approx((-grad).tolist(), abs=1e-6)
    assert "q" in method.state_dict()


def test_groupdro_needs_group_labels(tmp_path, digits_splits):
    tr = digits_splits["train"]
    no_groups = TensorGroupedDataset(tr.x, name=tr.name, split="train", y=tr.y, a=None,
                                     class_names=tr.class_names, attribute_names=None, info=tr.info)
    splits = {**digits_splits, "train": no_groups}
    with pytest.raises(UserError, match="needs group labels on train"):
        build_run(tiny_config(tmp_path, "groupdro"), torch.device("cpu"), DistInfo(), splits)
