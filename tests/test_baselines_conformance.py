"""The new baselines resume bit-exactly, and each of their declared settings changes what they train."""

import pytest
import torch

from conftest import tiny_config
from earlyreadout.distributed import DistInfo
from earlyreadout.methods import METHODS
from earlyreadout.methods.base import OPTIMIZER_HPARAMS
from earlyreadout.train.engine import build_run, fit_epoch, train


def quiet(_msg: str) -> None:
    pass


@pytest.mark.parametrize("name, hp", [
    ("irm", {"anneal_steps": 9}),  # the penalty weight switches inside the resumed epoch
    ("mmd", {}),
    ("coral", {}),
    ("mixup", {}),  # draws seeded by (seed, step)
    ("lisa", {}),
    ("lff", {}),  # the biased network and its optimizer
    ("spare", {"clusters": 2}),  # inferred weights restored, stage 1 not rerun
    ("eiil", {"steps": 200}),
])
def test_a_resumed_run_matches_an_uninterrupted_one(name, hp, tmp_path):
    full = train(tiny_config(tmp_path / "full", name, hp=hp, train={"epochs": 3}), log=quiet)
    train(tiny_config(tmp_path / "cut", name, hp=hp, train={"epochs": 2}), log=quiet)
    resumed = train(tiny_config(tmp_path / "cut", name, hp=hp, train={"epochs": 3}), resume=True, log=quiet)
    resumed["train_time_s"] = full["train_time_s"]
    assert resumed == full


# per method: the settings every run below starts from, and a value other than the default for each setting
MOVES = {
    "irm": ({"anneal_steps": 0}, {"penalty": 1000.0, "anneal_steps": 500}),
    "mmd": ({}, {"gamma": 10.0}),
    "coral": ({}, {"gamma": 10.0}),
    "mixup": ({}, {"alpha": 2.0}),
    "lisa": ({}, {"alpha": 0.5, "p_same_label": 0.0}),
    "lff": ({}, {"q": 0.3}),
    "spare": ({}, {"erm_epochs": 2, "clusters": 2, "high_power": 3.0, "silhouette_threshold": -1.0}),
    "eiil": ({"steps": 50}, {"erm_epochs": 2, "steps": 1000, "assign_lr": 0.5, "eta": 1.0,
                              "balanced_sampling": False}),
}
# the layer whose input is matched or mixed: the tiny CNN has one candidate, so no other value exists
LAYER_SETTINGS = {"classifier"}


def trained_state(name: str, hp: dict, tmp_path) -> dict[str, torch.Tensor]:
    method, _, loader = build_run(tiny_config(tmp_path, name, hp=hp), torch.device("cpu"), DistInfo())
    fit_epoch(method, loader, 0, 0, 0, torch.device("cpu"), max_steps=3)
    return {k: v.detach().clone() for k, v in method.network.state_dict().items()}


@pytest.mark.parametrize("name", sorted(MOVES))
def test_every_declared_setting_moves_the_result(name, tmp_path):
    base, changes = MOVES[name]
    declared = set(METHODS.get(name).hparams) - set(OPTIMIZER_HPARAMS) - LAYER_SETTINGS
    assert set(changes) == declared
    reference = trained_state(name, base, tmp_path / "base")
    for key, value in changes.items():
        state = trained_state(name, {**base, key: value}, tmp_path / key)
        moved = any(not torch.equal(state[k], reference[k]) for k in reference)
        assert moved, f"{name}.{key}={value} changed nothing"
