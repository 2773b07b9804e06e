"""A run of each baseline resumed from its epoch-2 checkpoint ends exactly where an uninterrupted run does."""

import pytest

from conftest import tiny_config
from earlyreadout.train.engine import train


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
