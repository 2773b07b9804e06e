"""The re-balancing baselines (SubpopBench's imbalanced-learning family): their formulas against hand-computed
values, and each method's defining computation on a hand-made batch."""

import math

import pytest
import torch
from torch import nn

from conftest import tiny_config
from earlyreadout.data.base import TensorGroupedDataset
from earlyreadout.data.loader import BatchLoader
from earlyreadout.distributed import DistInfo
from earlyreadout.errors import UserError
from earlyreadout.methods import METHODS
from earlyreadout.methods.base import Context
from earlyreadout.methods.rebalance.losses import focal_terms, ldam_logits, ldam_margins, prior_shifted_logits
from earlyreadout.methods.sample_weights import (
    cvar_weights,
    effective_number_weights,
    inverse_size_weights,
    normalized,
)
from earlyreadout.params import resolve
from earlyreadout.train.engine import build_run, train


def test_normalized_weights_keep_their_ratios_at_mean_one():
    assert normalized(torch.tensor([1.0, 3.0, 0.0, 4.0])).tolist() == pytest.approx([0.5, 1.5, 0.0, 2.0])


def test_inverse_size_weights_hand_made():
    assert inverse_size_weights(torch.tensor([1, 3, 0, 4])).tolist() == pytest.approx([48 / 19, 16 / 19, 0, 12 / 19])
    assert inverse_size_weights(torch.tensor([1, 4, 0]), 0.5).tolist() == pytest.approx([2.0, 1.0, 0.0])


def test_effective_number_weights_hand_made():
    # beta 0.5: effective numbers 1 - 0.5 and 1 - 0.25, weights 0.5/0.5 and 0.5/0.75, normalised to mean 1
    assert effective_number_weights(torch.tensor([1, 2, 0]), 0.5).tolist() == pytest.approx([1.8, 1.2, 0.0])


def test_focal_term_hand_made():
    ce = torch.tensor([math.log(2), 0.0])
    assert focal_terms(ce, 2.0).tolist() == pytest.approx([0.25 * math.log(2), 0.0])
    assert focal_terms(ce, 0.0).tolist() == pytest.approx(ce.tolist())  # gamma 0: cross-entropy


def test_ldam_margins_and_logits_hand_made():
    margins = ldam_margins(torch.tensor([16, 1]), 0.5)  # 16^-1/4 = 0.5 and 1, scaled so the largest is 0.5
    assert margins.tolist() == pytest.approx([0.25, 0.5])
    out = ldam_logits(torch.tensor([[1.0, 2.0], [1.0, 2.0]]), torch.tensor([1, 0]), margins, 2.0)
    assert out.flatten().tolist() == pytest.approx([2.0, 3.0, 1.5, 4.0])  # only the true class loses its margin


def test_prior_shift_hand_made():
    out = prior_shifted_logits(torch.zeros(1, 3), torch.tensor([1.0, 4.0, 0.0]))
    assert out[0].tolist() == pytest.approx([0.0, math.log(4), 0.0])  # an empty class counts as 1


def test_cvar_weights_hand_made():
    losses = torch.tensor([1.0, 4.0, 2.0, 3.0])
    assert cvar_weights(losses, 0.5).tolist() == pytest.approx([0, 0.5, 0, 0.5])
    # alpha m = 1.2: 1/1.2 on the largest, the remaining 1/6 on the next
    assert cvar_weights(losses, 0.3).tolist() == pytest.approx([0, 5 / 6, 0, 1 / 6])
    assert cvar_weights(losses, 1.0).tolist() == pytest.approx([0.25] * 4)


# groups (y, a): (0,0) x3, (0,1) x1, (1,0) x0, (1,1) x2 -> counts [3, 1, 0, 2]; classes [4, 2]
Y, A = [0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1]


def hand_made(attributes: bool = True) -> TensorGroupedDataset:
    return TensorGroupedDataset(torch.arange(6.0)[:, None], name="hand", split="train", y=torch.tensor(Y),
                                a=torch.tensor(A) if attributes else None, class_names=["0", "1"],
                                attribute_names=["a0", "a1"] if attributes else None, info={"shape": (1,)})


class Head(nn.Module):
    """A linear classifier on a one-number input, zero weights: every logit starts at its bias."""

    def __init__(self, bias=(0.0, 0.0)):
        super().__init__()
        self.body = nn.Identity()
        self.fc = nn.Linear(1, 2)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor(bias))

    def forward(self, x):
        return self.fc(self.body(x))


def make(name, data, network=None, batch=6, **hp):
    cls = METHODS.get(name)
    values, problems = resolve(cls.hparams, {"lr": 1e-12, "momentum": 0.0, "weight_decay": 0.0, **hp}, name)
    assert not problems
    ctx = Context(n_classes=2, n_groups=data.n_groups, train=data, train_loader=BatchLoader(data, batch),
                  example_input=data.x[:2], device=torch.device("cpu"))
    return cls(network or Head(), values, ctx)


def full_batch(data):
    return next(iter(BatchLoader(data, len(data))))


@pytest.mark.parametrize("name, by, weights", [
    ("reweight", "group", [8 / 11, 24 / 11, 0, 12 / 11]),  # 1/3, 1, 0, 1/2 scaled to mean 1 over the 4 groups
    ("reweight", "class", [2 / 3, 4 / 3]),  # 1/4 and 1/2, mean 1 over the classes
    ("sqrt-reweight", "class", [2 * 0.5 / (0.5 + 2 ** -0.5), 2 * 2 ** -0.5 / (0.5 + 2 ** -0.5)]),
    ("cbloss", "class", [8 / 9, 10 / 9]),  # beta 0.5: 0.5 / (1 - 0.5^4) and 0.5 / (1 - 0.5^2), mean 1
])
def test_reweighting_scales_each_example_by_its_bins_weight(name, by, weights):
    method = make(name, hand_made(), balance_by=by, **({"beta": 0.5} if name == "cbloss" else {}))
    assert method.weights.tolist() == pytest.approx(weights)
    stats = method.update(full_batch(hand_made()), 0)
    per_example = torch.tensor(weights)[torch.tensor([0, 0, 0, 1, 3, 3]) if by == "group" else torch.tensor(Y)]
    assert stats["loss"] == pytest.approx(math.log(2) * per_example.mean().item())  # zero logits: CE = log 2


def test_balance_by_class_reads_no_group_labels(tmp_path, digits_splits):
    tr = digits_splits["train"]
    no_groups = TensorGroupedDataset(tr.x, name=tr.name, split="train", y=tr.y, a=None,
                                     class_names=tr.class_names, attribute_names=None, info=tr.info)
    splits = {**digits_splits, "train": no_groups}
    for name in ("reweight", "sqrt-reweight", "cbloss", "resample", "crt", "reweight-crt"):
        assert METHODS.get(name).labels_used({"balance_by": "group"}) == "train"
        assert METHODS.get(name).labels_used({"balance_by": "class"}) == "none"
        with pytest.raises(UserError, match="needs group labels on train.*; set method.balance_by=class"):
            build_run(tiny_config(tmp_path, name), torch.device("cpu"), DistInfo(), splits)
        build_run(tiny_config(tmp_path, name, hp={"balance_by": "class"}), torch.device("cpu"), DistInfo(), splits)


def test_resample_draws_every_group_equally_often():
    method = make("resample", hand_made())
    assert method.ctx.train_loader.sample_weights.tolist() == pytest.approx([1 / 3] * 3 + [1.0, 0.5, 0.5])
    method = make("resample", hand_made(), balance_by="class")
    assert method.ctx.train_loader.sample_weights.tolist() == pytest.approx([0.25] * 4 + [0.5, 0.5])


def test_ldam_subtracts_the_true_class_margin_before_scaling():
    method = make("ldam", hand_made(), max_m=0.5, scale=2.0)
    assert method.margins.tolist() == pytest.approx([0.5 * 4 ** -0.25 / 2 ** -0.25, 0.5])  # classes of 4 and 2
    m0, m1 = method.margins.tolist()
    ce0 = math.log(1 + math.exp(2 * m0))  # zero logits: the true class's scaled logit is -2 m_y
    ce1 = math.log(1 + math.exp(2 * m1))
    assert method.update(full_batch(hand_made()), 0)["loss"] == pytest.approx((4 * ce0 + 2 * ce1) / 6)


def test_bsoftmax_shifts_the_loss_by_the_log_prior_and_not_the_prediction():
    method = make("bsoftmax", hand_made())
    # logits + (log 4, log 2): p(0) = 2/3 for every example
    expected = (4 * math.log(3 / 2) + 2 * math.log(3)) / 6
    assert method.update(full_batch(hand_made()), 0)["loss"] == pytest.approx(expected)
    assert method.predict(torch.ones(1, 1))[0].tolist() == pytest.approx([0.0, 0.0], abs=1e-9)


def test_focal_down_weights_by_the_true_class_probability():
    method = make("focal", hand_made(), network=Head((math.log(3), 0.0)), gamma=2.0)
    # p(0) = 3/4 for every example: y=0 loses (1/4)^2 log(4/3), y=1 loses (3/4)^2 log 4
    expected = (4 * (1 / 16) * math.log(4 / 3) + 2 * (9 / 16) * math.log(4)) / 6
    assert method.update(full_batch(hand_made()), 0)["loss"] == pytest.approx(expected)


def test_cvardro_minimises_the_worst_alpha_fraction_of_the_batch():
    method = make("cvardro", hand_made(), network=Head((math.log(3), 0.0)), alpha=0.3)
    # losses log(4/3) x4 (y=0) and log 4 x2 (y=1); alpha m = 1.8: 1/1.8 on one log 4, 0.8/1.8 on the other
    assert method.update(full_batch(hand_made()), 0)["loss"] == pytest.approx(math.log(4))
    method = make("cvardro", hand_made(), network=Head((math.log(3), 0.0)), alpha=0.5)
    # alpha m = 3: 1/3 on each log 4 and 1/3 on one log(4/3)
    assert method.update(full_batch(hand_made()), 0)["loss"] == pytest.approx((2 * math.log(4) + math.log(4 / 3)) / 3)


class Net(nn.Module):
    """A feature layer and a classifier, for the two-stage methods."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Linear(1, 4), nn.ReLU())
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.body(x))


@pytest.mark.parametrize("name, sampled", [("crt", [1 / 3] * 3 + [1.0, 0.5, 0.5]), ("vanilla-crt", None),
                                           ("reweight-crt", None)])
def test_crt_family_retrains_a_fresh_classifier_on_frozen_features(name, sampled):
    data = hand_made()
    method = make(name, data, network=Net(), batch=2, erm_epochs=1, lr=0.1)
    start = {k: v.clone() for k, v in method.network.state_dict().items()}
    torch.manual_seed(1)
    method.on_epoch_start(0)
    after_erm = {k: v.clone() for k, v in method.network.state_dict().items()}
    assert not torch.equal(after_erm["body.0.weight"], start["body.0.weight"])  # the ERM stage trained the body
    torch.manual_seed(1)
    assert torch.equal(after_erm["fc.weight"], nn.Linear(4, 2).weight)  # a freshly drawn classifier
    weights = method.ctx.train_loader.sample_weights
    assert (weights is None) if sampled is None else weights.tolist() == pytest.approx(sampled)
    for step, batch in enumerate(method.ctx.train_loader):
        method.update(batch, step)
    now = method.network.state_dict()
    assert torch.equal(now["body.0.weight"], after_erm["body.0.weight"])  # frozen features
    assert not torch.equal(now["fc.weight"], after_erm["fc.weight"])
    resumed = make(name, data, network=Net(), batch=2, erm_epochs=1, lr=0.1)
    resumed.load_checkpoint(method.checkpoint())
    resumed.on_epoch_start(1)  # the ERM stage is not redone
    assert all(torch.equal(v, now[k]) for k, v in resumed.network.state_dict().items())


def test_reweight_crt_weights_the_classifier_loss_by_group():
    method = make("reweight-crt", hand_made(), network=Head(), erm_epochs=1)
    assert method.weights.tolist() == pytest.approx(make("reweight", hand_made()).weights.tolist())
    logits = torch.zeros(6, 2)
    expected = math.log(2) * method.weights[torch.tensor([0, 0, 0, 1, 3, 3])].mean().item()
    assert method.head_loss(logits, full_batch(hand_made())).item() == pytest.approx(expected)


REBALANCING = ("reweight", "sqrt-reweight", "cbloss", "resample", "focal", "ldam", "bsoftmax", "cvardro", "crt",
               "reweight-crt", "vanilla-crt")


@pytest.mark.slow
@pytest.mark.parametrize("name", REBALANCING)
def test_a_resumed_run_equals_an_uninterrupted_one(name, tmp_path):
    hp = {"erm_epochs": 1} if "crt" in name else {}
    full = train(tiny_config(tmp_path / "full", name, hp=hp), log=lambda _m: None)
    train(tiny_config(tmp_path / "cut", name, hp=hp, train={"epochs": 1}), log=lambda _m: None)
    resumed = train(tiny_config(tmp_path / "cut", name, hp=hp), resume=True, log=lambda _m: None)
    resumed["train_time_s"] = full["train_time_s"]
    assert resumed == full
    assert full["labels_used"] == ("train" if name in ("reweight", "sqrt-reweight", "cbloss", "resample", "crt",
                                                       "reweight-crt") else "none")
