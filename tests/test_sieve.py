import json
import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import tiny_config
from earlyreadout.config import build_config
from earlyreadout.errors import ConfigError, UserError
from earlyreadout.methods import METHODS
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.readout.sieve import SIEVE_PARAMS, FeatureSieve, forget_loss
from earlyreadout.train.engine import train

DOCS = Path(__file__).resolve().parents[1] / "docs" / "sieve.md"


def quiet(_msg: str) -> None:
    pass


def test_forget_loss_hand_computed():
    # p = (1/4, 3/4): L = -(log 1/4 + log 3/4) / 2 ; uniform logits give log C
    logits = torch.tensor([[0.0, math.log(3.0)], [5.0, 5.0]])
    expected = ((math.log(4) + math.log(4 / 3)) / 2 + math.log(2)) / 2
    assert forget_loss(logits).item() == pytest.approx(expected, rel=1e-6)
    assert forget_loss(torch.zeros(3, 7)).item() == pytest.approx(math.log(7))


def cnn_and_batch(seed=0):
    torch.manual_seed(seed)
    return SmallCNN(3, 2, width=4), torch.randn(8, 3, 16, 16), torch.randint(0, 2, (8,))


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize("mode", ["three-pass", "single-pass"])
def test_forget_step_changes_only_the_early_layers(mode):
    model, x, y = cnn_and_batch()
    sieve = FeatureSieve(model, "block2", 2, x[:2], mode=mode, forget_every=1, forget_lr=0.5, readout_head="conv",
                         readout_depth=1, readout_width=8)
    assert set(sieve.early_names) == {"block1.0.weight", "block1.1.weight", "block1.1.bias",
                                      "block2.0.weight", "block2.1.weight", "block2.1.bias"}
    model_before, head_before = snapshot(model), snapshot(sieve.head)
    if mode == "three-pass":
        sieve.forget_step(x, y)
    else:  # only the forgetting term, through an optimizer over the whole model
        sieve.main_weight, sieve.readout_weight = 0.0, 0.0
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        opt.zero_grad()
        sieve.loss(model(x), y).backward()
        opt.step()
        assert all(p.grad is None or not p.grad.any() for p in sieve.head.parameters())
    changed = {k for k, v in model.named_parameters() if not torch.equal(v, model_before[k])}
    assert changed and changed <= set(sieve.early_names)
    assert all(torch.equal(v, head_before[k]) for k, v in sieve.head.named_parameters())
    sieve.close()


@pytest.mark.parametrize("mode", ["three-pass", "single-pass"])
def test_the_monitor_leaves_the_model_as_it_would_be_without_it(mode):
    """Its forward runs in train mode; the batch-norm statistics it moves are put back."""
    states, logged = [], []
    for monitor in (True, False):
        model, x, y = cnn_and_batch()
        torch.manual_seed(1)
        sieve = FeatureSieve(model, "block2", 2, x[:2], mode=mode, forget_every=1, forget_lr=0.5, monitor=monitor)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            sieve.loss(model(x), y).backward()
            opt.step()
            stats = sieve.step(x, y)
        states.append(model.state_dict())
        logged.append("readout_acc_after_forget" in stats)
        sieve.close()
    assert logged == [True, False]
    assert states[0].keys() == states[1].keys() and any("running_mean" in k for k in states[0])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.early = nn.Linear(4, 3)
        self.upper = nn.Linear(3, 2)

    def forward(self, x):
        return self.upper(torch.relu(self.early(x)))


def tiny_problem():
    torch.manual_seed(1)
    model, x, y = Tiny(), torch.randn(5, 4), torch.tensor([0, 1, 1, 0, 1])
    return model, x, y


def head_grads(head_w, head_b, h, y):
    """Hand-written CE gradient of a linear head: dL/dz = (softmax(z) - onehot(y)) / B."""
    dz = (torch.softmax(h @ head_w.T + head_b, 1) - F.one_hot(y, 2)) / len(y)
    return dz.T @ h, dz.sum(0)


def forget_grad_early(model, head_w, head_b, x):
    """Hand-written gradient of L_f w.r.t. the early layer: dL_f/dz = (softmax(z) - 1/C) / B, then chain rule."""
    h = x @ model.early.weight.T + model.early.bias
    dz = (torch.softmax(h @ head_w.T + head_b, 1) - 0.5) / len(x)
    dh = dz @ head_w
    return dh.T @ x, dh.sum(0)


def test_single_pass_gradients_match_hand_written_reference():
    model, x, y = tiny_problem()
    a1, a2, a3 = 0.7, 1.3, 2.0
    sieve = FeatureSieve(model, "early", 2, x[:2], mode="single-pass", readout_head="linear", forget_every=1,
                         main_weight=a1, readout_weight=a2, forget_weight=a3)
    w, b = sieve.head.out.weight.detach().clone(), sieve.head.out.bias.detach().clone()
    with torch.no_grad():
        h = model.early(x)
    main_ref = Tiny()
    main_ref.load_state_dict(model.state_dict())
    F.cross_entropy(main_ref(x), y).backward()
    sieve.loss(model(x), y).backward()

    fw, fb = forget_grad_early(model, w, b, x)
    torch.testing.assert_close(model.early.weight.grad, a1 * main_ref.early.weight.grad + a3 * fw)
    torch.testing.assert_close(model.early.bias.grad, a1 * main_ref.early.bias.grad + a3 * fb)
    torch.testing.assert_close(model.upper.weight.grad, a1 * main_ref.upper.weight.grad)
    hw, hb = head_grads(w, b, h, y)
    torch.testing.assert_close(sieve.head.out.weight.grad, a2 * hw)
    torch.testing.assert_close(sieve.head.out.bias.grad, a2 * hb)


def test_three_pass_updates_match_hand_written_reference():
    model, x, y = tiny_problem()
    readout_lr, forget_lr, a2, a3 = 0.1, 0.3, 1.5, 2.0
    sieve = FeatureSieve(model, "early", 2, x[:2], mode="three-pass", readout_head="linear", forget_every=1,
                         readout_lr=readout_lr, forget_lr=forget_lr, readout_weight=a2, forget_weight=a3, forget_steps=1,
                         readout_steps=1, reinit_every=0)  # the reference code's three passes
    w, b = sieve.head.out.weight.detach().clone(), sieve.head.out.bias.detach().clone()
    early_w, early_b = model.early.weight.detach().clone(), model.early.bias.detach().clone()
    upper = model.upper.weight.detach().clone()
    model.upper.weight.grad = torch.ones_like(upper)  # a user's gradient, which must survive
    with torch.no_grad():
        h = model.early(x)
    stats = sieve.step(x, y)

    hw, hb = head_grads(w, b, h, y)  # readout step: first SGD-momentum step is p -= lr * grad
    w2, b2 = w - readout_lr * a2 * hw, b - readout_lr * a2 * hb
    torch.testing.assert_close(sieve.head.out.weight.detach(), w2)
    torch.testing.assert_close(sieve.head.out.bias.detach(), b2)
    with torch.no_grad():
        ref = Tiny()
        ref.load_state_dict({**model.state_dict(), "early.weight": early_w, "early.bias": early_b})
    fw, fb = forget_grad_early(ref, w2, b2, x)  # forget step: plain SGD, with the head after its step
    torch.testing.assert_close(model.early.weight.detach(), early_w - forget_lr * a3 * fw)
    torch.testing.assert_close(model.early.bias.detach(), early_b - forget_lr * a3 * fb)
    assert torch.equal(model.upper.weight, upper)
    assert torch.equal(model.upper.weight.grad, torch.ones_like(upper))
    assert {"readout_loss", "readout_acc", "forget_loss", "readout_acc_before_forget"} <= set(stats)


def test_forgetting_schedule_and_monitor():
    model, x, y = cnn_and_batch()
    sieve = FeatureSieve(model, "block1", 2, x[:2], mode="three-pass", forget_every=3, monitor=True, readout_head="linear")
    forgot = ["forget_loss" in sieve.step(x, y) for _ in range(7)]
    assert forgot == [True, False, False, True, False, False, True]
    assert "readout_acc_after_forget" in sieve.last_forget
    assert int(sieve.state_dict()["steps"]) == 7
    none = FeatureSieve(model, "block1", 2, x[:2], forget_every=0, readout_head="linear")
    assert not any("forget_loss" in none.step(x, y) for _ in range(3))


def test_bad_settings_are_user_errors():
    model, x, _ = cnn_and_batch()
    with pytest.raises(UserError, match="'mode' parameter of FeatureSieve must be one of 'three-pass'"):
        FeatureSieve(model, "block1", 2, x[:2], mode="two-pass")
    with pytest.raises(UserError, match="did you mean"):
        FeatureSieve(model, "blok1", 2, x[:2])


@pytest.mark.parametrize("mode", ["three-pass", "single-pass"])
def test_method_trains_and_resumes_like_an_uninterrupted_run(tmp_path, mode):
    hp = {"mode": mode, "forget_every": 4, "readout_width": 8}
    full = train(tiny_config(tmp_path / "full", "sieve", hp=hp), log=quiet)
    train(tiny_config(tmp_path / "cut", "sieve", hp=hp, train={"epochs": 1}), log=quiet)
    resumed = train(tiny_config(tmp_path / "cut", "sieve", hp=hp), resume=True, log=quiet)
    resumed["train_time_s"] = full["train_time_s"]
    assert resumed == full
    rows = [json.loads(r) for r in (tmp_path / "full" / "run" / "log.jsonl").read_text().splitlines()]
    assert {"readout_loss", "readout_acc", "readout_acc_before_forget", "readout_acc_after_forget"} <= set(rows[0]["train"])
    saved = torch.load(tmp_path / "full" / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert set(saved) == set(SmallCNN(3, 2, 8).state_dict())  # the main network alone


def test_a_checkpoint_without_the_methods_optimizers_is_refused_in_one_line(tmp_path):
    hp = {"mode": "three-pass", "forget_every": 4, "readout_width": 8}
    train(tiny_config(tmp_path / "cut", "sieve", hp=hp, train={"epochs": 1}), log=quiet)
    last = tmp_path / "cut" / "run" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    optimizers = state["method_state"]["optimizers"]
    optimizers["aux"] = optimizers.pop("readout")  # the head's optimizer under a name the method does not use
    torch.save(state, last)
    with pytest.raises(UserError, match="no state for optimizer 'readout' .*start a new run"):
        train(tiny_config(tmp_path / "cut", "sieve", hp=hp), resume=True, log=quiet)


def test_default_config_for_dominoes_validates():
    cfg = build_config({"method": "sieve", "data": "dominoes", "out": "unused"})
    assert cfg.method.settings["forget_every"] > 0


def test_docs_example_runs():
    text = DOCS.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/sieve.md has no python example"
    namespace: dict = {}
    exec(compile(blocks[0], str(DOCS), "exec"), namespace)  # noqa: S102  (the documented example itself)
    stats = namespace["stats"]
    assert math.isfinite(stats["readout_loss"]) and 0.0 <= stats["readout_acc"] <= 1.0


def test_the_library_sieve_defaults_are_the_declared_ones_and_old_names_are_refused():
    model, x, _ = cnn_and_batch()
    sieve = FeatureSieve(model, "block1", 2, x[:2])
    assert sieve.settings == {k: p.default for k, p in SIEVE_PARAMS.items()}
    assert METHODS.get("sieve").hparams["mode"] is SIEVE_PARAMS["mode"]  # one declaration for both
    with pytest.raises(ConfigError, match="'width' was renamed to 'readout_width'.*'aux_depth' was renamed to "
                       "'readout_depth'"):
        FeatureSieve(model, "block1", 2, x[:2], width=8, aux_depth=1)
    with pytest.raises(ConfigError, match="did you mean 'forget_lr'"):
        FeatureSieve(model, "block1", 2, x[:2], forget_rate=0.1)


def test_repeated_readout_and_forget_steps_in_three_pass_mode():
    model, x, y = cnn_and_batch()
    calls = {"readout": 0, "forget": 0}
    sieve = FeatureSieve(model, "block1", 2, x[:2], mode="three-pass", forget_every=2, readout_head="linear",
                         readout_steps=3, forget_steps=2)
    for name in calls:
        step = getattr(sieve, f"{name}_step")

        def counted(*args, _step=step, _name=name):
            calls[_name] += 1
            return _step(*args)

        setattr(sieve, f"{name}_step", counted)
    forwards = []
    model.block1.register_forward_hook(lambda *_: forwards.append(1))
    stats = sieve.step(x, y)  # step 0 forgets
    assert calls == {"readout": 3, "forget": 2} and "forget_loss" in stats
    # one forward serves the three head steps and the first forget step; the second forget step and the
    # monitor run their own
    assert len(forwards) == 3
    sieve.step(x, y)  # step 1 does not
    assert calls == {"readout": 6, "forget": 2}
    assert len(forwards) == 4  # one forward for the three head steps
    with pytest.raises(UserError, match=r"'forget_steps' parameter of FeatureSieve must be an int in the range \[1"):
        FeatureSieve(model, "block1", 2, x[:2], forget_steps=0)


def test_reinit_every_gives_the_head_fresh_weights_and_a_fresh_optimizer():
    model, x, y = cnn_and_batch()
    sieve = FeatureSieve(model, "block1", 2, x[:2], mode="three-pass", forget_every=0, reinit_every=2)
    sieve.step(x, y)
    trained = [p.detach().clone() for p in sieve.head.parameters()]
    assert sieve.readout_optimizer.state  # momentum buffers after one step
    sieve.step(x, y)  # the second step ends with a re-initialisation
    assert not sieve.readout_optimizer.state
    assert all(not torch.equal(a, b) for a, b in zip(trained, sieve.head.parameters()))
    never = FeatureSieve(model, "block1", 2, x[:2], mode="three-pass", forget_every=0)
    never.step(x, y)
    never.step(x, y)
    assert never.readout_optimizer.state


def test_sieves_on_two_stages_train_resume_and_probe_both(tmp_path):
    hp = {"readout_layer": "stage:1,stage:2", "mode": "three-pass", "forget_every": 1}
    full = train(tiny_config(tmp_path / "full", "sieve", hp=hp), log=quiet)
    train(tiny_config(tmp_path / "cut", "sieve", hp=hp, train={"epochs": 1}), log=quiet)
    resumed = train(tiny_config(tmp_path / "cut", "sieve", hp=hp), resume=True, log=quiet)
    assert resumed["test"]["worst_group_accuracy"] == full["test"]["worst_group_accuracy"]
    rows = [json.loads(line) for line in (tmp_path / "full" / "run" / "log.jsonl").read_text().splitlines()]
    assert {"probe_spurious", "probe_spurious@block2"} <= set(rows[-1]["measures"])
    with pytest.raises(ConfigError, match="need mode=three-pass"):
        train(tiny_config(tmp_path / "single", "sieve", hp={**hp, "mode": "single-pass"}), log=quiet)
