"""`compare --methods` families: all, label-free and group-labels, mixed with method names."""

import pytest

from earlyreadout.cli import main
from earlyreadout.compare import compare, expand_methods
from earlyreadout.errors import UserError
from earlyreadout.methods import METHODS
from earlyreadout.report.table import labels_of
from earlyreadout.train.retrain import retrain

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


def test_a_then_b_trains_a_once_and_refits_it_as_the_retrain_command_does(tmp_path, capsys):
    """`erm+dfr` reuses the plain erm run and equals `earlyreadout retrain` of it; its labels are the pair's."""
    tiny = ["data.n_train=64", "data.n_val=48", "data.n_test=32", "data.size=16", "model.width=8", "train.epochs=1"]
    results = compare(["erm", "erm+dfr"], tmp_path / "cmp", overrides=tiny)
    assert [r["method"] for r in results] == ["erm", "erm+dfr"]
    printed = capsys.readouterr().out
    assert printed.count("epoch   1/1") == 1 and "== refit by dfr -> " in printed  # erm trained once
    assert results[1]["labels_used"] == "val" and results[0]["labels_used"] == "none"
    assert (tmp_path / "cmp" / "erm+dfr" / "seed0" / "checkpoints" / "retrained.pt").is_file()
    direct = retrain(tmp_path / "cmp" / "erm" / "seed0", "dfr", tmp_path / "direct", log=lambda _m: None)
    assert results[1]["test"] == direct["test"] and results[1]["val"] == direct["val"]


@pytest.mark.parametrize("name", ["erm+jtt", "ermm+dfr", "erm+"])
def test_a_then_b_needs_a_method_then_a_last_layer_method(name):
    with pytest.raises(UserError, match=r"A\+B trains method A, then refits its last layer with B; .*readout-dfr"):
        expand_methods([name])


def test_methods_needing_group_labels_the_data_lacks_are_all_refused_before_anything_trains(tmp_path, capsys):
    """A CSV without an attribute column: every method reading train or val groups is named in one line, exit 2,
    and no run directory is made (erm comes first and would otherwise train)."""
    data = tmp_path / "t.csv"
    data.write_text("filename,y,split\n" + "".join(f"word{i} w{i % 2},{i % 2},{i % 3}\n" for i in range(12)))
    out = tmp_path / "cmp"
    args = ["compare", "--methods", "erm,groupdro,jtt,reweight,dfr,afr,erm+dfr", "--data", "csv", "--data-root",
            str(data), "data.modality=text", "data.attribute_column=null", "--model", "bag-of-embeddings", "--epochs",
            "1", "--device", "cpu", "--out", str(out)]
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert ("methods 'groupdro', 'reweight' need group labels on train and methods 'dfr', 'erm+dfr' need group "
            "labels on val, which csv does not have; drop them from --methods, or compare --methods label-free") in err
    assert not out.exists()
    # the one check the engine runs too: dfr alone is refused before its ERM stage trains
    assert main(["train", "--method", "dfr", *args[3:-2], "--out", str(tmp_path / "dfr")]) == 2
    assert ("method 'dfr' needs group labels on val, which csv does not have; choose a method `earlyreadout list` "
            "shows reading none") in capsys.readouterr().err
    assert not [f for f in (tmp_path / "dfr").rglob("*") if f.is_file()]  # nothing that blocks a retry
