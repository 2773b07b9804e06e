import copy

import pytest
import torch
from torch import nn

import earlyreadout.methods.labelfree.jtt as jtt_module
from conftest import reloaded_test_metrics, tiny_config
from earlyreadout.data.loader import BatchLoader
from earlyreadout.distributed import DistInfo
from earlyreadout.methods.base import Context
from earlyreadout.methods.labelfree.jtt import JTT
from earlyreadout.params import resolve
from earlyreadout.readout.scores import misclassified
from earlyreadout.readout.weights import upweights
from earlyreadout.train.engine import build_run, train


class ConstantClassifier(nn.Module):
    """Predicts class 0 for every input (zero weights, biased output); lr=0 keeps it so."""

    def __init__(self, n_inputs: int, n_classes: int):
        super().__init__()
        self.fc = nn.Linear(n_inputs, n_classes)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.bias.copy_(torch.tensor([3.0] + [-3.0] * (n_classes - 1)))

    def forward(self, x):
        return self.fc(x.flatten(1))


def make_jtt(train_split, network, **hp):
    values, problems = resolve(JTT.hparams, {"erm_epochs": 1, "lambda_up": 5.0, **hp}, "jtt")
    assert not problems
    loader = BatchLoader(train_split, 16, shuffle=True, seed=0)
    ctx = Context(n_classes=train_split.n_classes, n_groups=train_split.n_groups, train=train_split,
                  train_loader=loader, example_input=train_split.tensors()[:2], device=torch.device("cpu"))
    return JTT(network, values, ctx)


def test_error_set_and_weights_hand_made():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, -1.0], [-1.0, 0.5]])
    y = torch.tensor([0, 0, 1, 1])
    errors = misclassified(logits, y)
    assert errors.tolist() == [False, True, True, False]
    assert upweights(errors, 50).tolist() == [1.0, 50.0, 50.0, 1.0]


def test_errors_of_the_stage1_model_are_oversampled(digits_splits):
    train_split = digits_splits["train"]
    n_inputs = train_split.tensors()[0].numel()
    method = make_jtt(train_split, ConstantClassifier(n_inputs, train_split.n_classes), lr=1e-12,
                      weight_decay=0.0, upweight="sample")
    method.on_epoch_start(0)
    expected = train_split.y != 0  # the constant model is wrong exactly on the non-zero labels
    assert expected.any() and not expected.all()
    assert torch.equal(method.errors, expected)
    weights = method.ctx.train_loader.sample_weights
    assert torch.equal(weights, torch.where(expected, 5.0, 1.0))
    method.ctx.train_loader.set_epoch(0)
    drawn = method.ctx.train_loader.order()
    share = expected[drawn].float().mean()
    base = expected.float().mean()
    assert share > base + 0.2  # oversampling: errors are drawn far more often than their share


def test_loss_mode_weights_the_error_set_and_keeps_the_mean(digits_splits):
    train_split = digits_splits["train"]
    n_inputs = train_split.tensors()[0].numel()
    method = make_jtt(train_split, ConstantClassifier(n_inputs, train_split.n_classes), lr=1e-12,
                      weight_decay=0.0, upweight="loss")
    method.on_epoch_start(0)
    expected = train_split.y != 0
    w = method.loss_weights
    assert method.ctx.train_loader.sample_weights is None
    assert w.mean().item() == pytest.approx(1.0)
    assert torch.allclose(w[expected] / w[~expected][0], torch.tensor(5.0))


def test_stage2_restarts_from_the_initial_network_and_resume_skips_stage1(digits_splits):
    train_split = digits_splits["train"]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(train_split.tensors()[0].numel(), train_split.n_classes))
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    method = make_jtt(train_split, net, lr=0.5)
    method.on_epoch_start(0)
    assert all(torch.equal(initial[k], v) for k, v in net.state_dict().items())
    state = method.checkpoint()

    other = make_jtt(train_split, nn.Sequential(nn.Flatten(), nn.Linear(train_split.tensors()[0].numel(),
                                                                         train_split.n_classes)), lr=0.5)
    other.load_checkpoint(state)
    other.run_stage1 = lambda: pytest.fail("stage 1 re-ran after a resume")
    other.on_epoch_start(1)
    assert torch.equal(other.errors, method.errors)


def test_jtt_in_the_engine_upweights_exactly_the_stage1_models_training_errors(tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path, "jtt", hp={"erm_epochs": 1, "lambda_up": 10})
    stage1, real_train_erm = {}, jtt_module.train_erm

    def recording_train_erm(model, *args):
        real_train_erm(model, *args)
        stage1["model"] = copy.deepcopy(model).eval()  # the stage-1 model, before JTT restores the start

    method, _, _ = build_run(cfg, torch.device("cpu"), DistInfo())
    monkeypatch.setattr(jtt_module, "train_erm", recording_train_erm)
    method.on_epoch_start(0)
    monkeypatch.undo()
    train_split = method.ctx.train
    with torch.no_grad():
        stage1_errors = stage1["model"](train_split.tensors()).argmax(1) != train_split.y
    assert stage1_errors.any() and not stage1_errors.all()
    assert torch.equal(method.errors, stage1_errors)
    w = method.loss_weights
    assert torch.allclose(w[stage1_errors] / w[~stage1_errors][0], torch.tensor(10.0))
    assert torch.allclose(w[~stage1_errors], w[~stage1_errors][0])

    result = train(cfg, log=lambda _m: None)  # and through the whole engine: it saved what it evaluated
    assert result["method"] == "jtt"
    reloaded = reloaded_test_metrics(cfg.out)
    assert reloaded["worst_group_accuracy"] == pytest.approx(result["test"]["worst_group_accuracy"])
