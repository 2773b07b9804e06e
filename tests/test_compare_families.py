"""`compare --methods` families: all, label-free and group-labels, mixed with method names."""

import pytest

from earlyreadout.compare import expand_methods
from earlyreadout.errors import UserError
from earlyreadout.methods import METHODS
from earlyreadout.report.table import labels_of

DISTILLERS = {m for m in METHODS if "teacher" in METHODS.get(m).hparams}


def test_all_is_every_method_that_trains_without_a_teacher_erm_first():
    methods, skipped = expand_methods(["all"])
    assert methods[0] == "erm"
    assert set(methods) == set(METHODS) - DISTILLERS
    assert set(skipped) == DISTILLERS and {"kd", "dedier"} <= DISTILLERS


def test_families_split_methods_by_the_labels_they_read():
    free, _ = expand_methods(["label-free"])
    grouped, _ = expand_methods(["group-labels"])
    assert {"erm", "jtt", "focal", "ldam", "bsoftmax", "cvardro", "vanilla-crt"} <= set(free)
    assert {"groupdro", "reweight", "resample", "crt", "dfr"} <= set(grouped)
    assert not set(free) & set(grouped) and set(free) | set(grouped) == set(METHODS) - DISTILLERS
    assert all(labels_of(m, {}) == "none" for m in free)
    assert {labels_of(m, {}) for m in grouped} == {"train", "val"}


def test_families_mix_with_names_without_repeats():
    methods, _ = expand_methods(["groupdro", "label-free", "erm", "ceiling"])
    assert methods[:2] == ["groupdro", "erm"] and methods[-1] == "ceiling"
    assert len(methods) == len(set(methods))
    named, skipped = expand_methods(["all", "kd"])
    assert "kd" in named and "kd" not in skipped  # a distiller named on its own is kept


def test_unknown_names_list_methods_and_families():
    with pytest.raises(UserError, match=r"unknown method 'label-fre' \(did you mean 'label-free'.*families"):
        expand_methods(["label-fre"])


def test_balance_by_moves_a_method_between_families():
    assert labels_of("reweight", {}) == "train" and labels_of("reweight", {"balance_by": "class"}) == "none"
