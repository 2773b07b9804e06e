import json
import math

import pytest
import torch

from conftest import tiny_config, tiny_splits
from earlyreadout.distributed import DistInfo
from earlyreadout.errors import ConfigError
from earlyreadout.models.cnn import SmallCNN
from earlyreadout.readout.fit import FoldedReadouts
from earlyreadout.readout.weighters import CROSS_FIT_WEIGHTER_PARAMS, CrossFitReadoutWeighter
from earlyreadout.readout.weights import flag_weights
from earlyreadout.train.engine import build_run, train


def quiet(_message):
    pass


def test_flag_weights_hand_made():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.55, 0.45], [0.2, 0.8]])
    y = torch.tensor([1, 1, 1, 0])  # errors: rows 0 (margin 0.8), 2 (margin 0.1), 3 (margin 0.6)
    exp = flag_weights(probs, y, "exp", alpha=0.5, beta=2.0, lambda_up=10.0)
    assert exp.tolist() == pytest.approx([math.exp(2 * 0.8**0.5), 1.0, math.exp(2 * 0.1**0.5),
                                          math.exp(2 * 0.6**0.5)], rel=1e-5)
    lam = flag_weights(probs, y, "lambda", alpha=0.5, beta=2.0, lambda_up=10.0)
    assert lam.tolist() == [10.0, 1.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="weighting"):
        flag_weights(probs, y, "square", 0.5, 2.0, 10.0)


def test_reweighter_takes_its_defaults_from_the_declared_parameters():
    model = SmallCNN(in_channels=3, n_classes=2, width=4)
    rw = CrossFitReadoutWeighter(model, "block1", 2, torch.randn(2, 3, 16, 16))
    assert rw.settings == {k: p.default for k, p in CROSS_FIT_WEIGHTER_PARAMS.items()}
    with pytest.raises(ConfigError, match="'folds' parameter of CrossFitReadoutWeighter must be an int in the range"):
        CrossFitReadoutWeighter(model, "block1", 2, torch.randn(2, 3, 16, 16), folds=0)
    with pytest.raises(ConfigError, match="did you mean 'lambda_up'"):
        CrossFitReadoutWeighter(model, "block1", 2, torch.randn(2, 3, 16, 16), lamda_up=5.0)


def test_cross_fitted_readout_flags_the_minority_and_leaves_the_model_as_it_was():
    # a random-init CNN's first block already carries the tint; a readout on it learns the shortcut
    splits = tiny_splits("colored-digits", size=16, n_train=400, correlation=0.9)
    train_split = splits["train"]
    torch.manual_seed(0)
    model = SmallCNN(in_channels=3, n_classes=2, width=8).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    rw = CrossFitReadoutWeighter(model, "block1", 2, train_split.tensors()[:2], readout_epochs=30,
                                 readout_lr=0.05)
    weights = rw.weights(train_split, seed=3)
    assert weights.shape == (400,) and (weights >= 1).all()
    minority = train_split.a != train_split.y
    flagged = weights > 1
    assert flagged[minority].float().mean() > 0.8  # most of the minority is flagged
    assert flagged[~minority].float().mean() < 0.1  # and little of the majority
    assert rw.last["readout_error_fraction"] == pytest.approx(flagged.float().mean().item())
    assert model.training and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)  # the readout's seeding does not disturb the caller's RNG
    assert not model.block1._forward_hooks  # its hooks are removed


@pytest.mark.parametrize("hp", [{"upweight": "loss", "refresh": "epoch"},
                                {"upweight": "sample", "refresh": "once", "weighting": "lambda"}])
def test_weights_start_after_the_warmup_and_a_resumed_run_matches(tmp_path, hp):
    hp = {**hp, "warmup_epochs": 1}
    full = train(tiny_config(tmp_path / "a", "readout-reweight", hp=hp, train={"epochs": 3}), log=quiet)
    rows = [json.loads(r) for r in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines()]
    assert "readout_error_fraction" not in rows[0]["train"]  # epoch 0: plain ERM
    assert all("readout_error_fraction" in r["train"] for r in rows[1:])
    cut = tiny_config(tmp_path / "b", "readout-reweight", hp=hp, train={"epochs": 2})
    train(cut, log=quiet)
    resumed = train(tiny_config(tmp_path / "b", "readout-reweight", hp=hp, train={"epochs": 3}), resume=True,
                    log=quiet)
    assert resumed["test"] == full["test"] and resumed["best_epoch"] == full["best_epoch"]


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_cached_training_scores_equal_a_fresh_forward(head):
    train_split = tiny_splits("colored-digits", size=16)["train"]
    torch.manual_seed(0)
    model = SmallCNN(in_channels=3, n_classes=2, width=4)
    with FoldedReadouts(model, ["block1", "block2"], 2, train_split.tensors()[:2], folds=2, head=head,
                        width=8, seed=1) as readouts:
        readouts.fit(train_split, epochs=2, batch_size=16)
        cached = readouts.train_probs(train_split)
        fresh, _ = readouts.score(train_split, own_fold=True)
    for layer in ("block1", "block2"):
        assert torch.allclose(cached[layer], fresh[layer], atol=1e-5)


def test_restart_scores_after_the_warmup_then_trains_from_the_initial_weights(tmp_path):
    """With restart, the first epoch starts from the initial network (as JTT's second stage), carrying the weights
    the warmed-up network's readout gave; a resume after that epoch continues the same run."""
    hp = {"restart": True, "refresh": "once", "warmup_epochs": 1, "weighting": "lambda", "lambda_up": 7.0}
    cfg = tiny_config(tmp_path / "a", "readout-reweight", hp=hp, train={"epochs": 2})
    method, _, _ = build_run(cfg, torch.device("cpu"), DistInfo())
    initial = {k: v.clone() for k, v in method.network.state_dict().items()}
    method.train()
    method.on_epoch_start(0)
    assert all(torch.equal(v, initial[k]) for k, v in method.network.state_dict().items())
    assert set(method.weights.unique().tolist()) <= {1.0, 7.0} and (method.weights == 7.0).any()
    assert method.stats["readout_error_fraction"] == pytest.approx(float((method.weights == 7.0).float().mean()))
    full = train(tiny_config(tmp_path / "b", "readout-reweight", hp=hp, train={"epochs": 3}), log=quiet)
    train(tiny_config(tmp_path / "c", "readout-reweight", hp=hp, train={"epochs": 2}), log=quiet)
    resumed = train(tiny_config(tmp_path / "c", "readout-reweight", hp=hp, train={"epochs": 3}), resume=True, log=quiet)
    assert resumed["test"] == full["test"]
