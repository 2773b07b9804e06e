"""`earlyreadout import`: a model trained elsewhere becomes a run that every command reads; bad input is one line,
exit 2, nothing written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from earlyreadout.cli import main
from earlyreadout.io import load_checkpoint
from earlyreadout.train.engine import train
from earlyreadout.train.retrain import retrain
from practitioner import image_folder, train_own_model


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """(folder, CSV, model file, checkpoint) of a practitioner's model trained in their own loop."""
    root = tmp_path_factory.mktemp("own")
    csv = image_folder(root)
    model_file, checkpoint = train_own_model(root)
    return root, csv, model_file, checkpoint


def import_args(own, out, *extra):
    _, csv, model_file, checkpoint = own
    return ["import", "--model", f"{model_file}:Net", "--checkpoint", str(checkpoint), "--data-root", str(csv),
            "--image-size", "16", "--device", "cpu", "--out", str(out), *extra]


def test_three_commands_reach_a_fix_a_diagnosis_and_a_report(own, tmp_path):
    run, fixed = tmp_path / "mine", tmp_path / "mine-fixed"
    assert main(import_args(own, run)) == 0
    for name in ("config.yaml", "layers.json", "metrics.json", "versions.json", "checkpoints/best.pt", "done",
                 "diagnosis.json", "source/my_models.py"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "imported" and metrics["labels_used"] == "unknown"
    assert metrics["train"]["groups_by"] == "label"  # no attributes on train: per class
    assert metrics["test"]["groups_by"] == "label and attribute"
    assert metrics["imported"]["source_sha256"] == metrics["imported"]["source_sha256"].lower() != ""
    assert main(["retrain", "--run", str(run), "--method", "readout-dfr", "--out", str(fixed)]) == 0
    after = json.loads((fixed / "metrics.json").read_text())
    assert after["labels_used"] == "unknown"  # the imported model may have read anything
    assert after["test"]["worst_group_accuracy"] > metrics["test"]["worst_group_accuracy"] + 0.2
    assert main(["report", str(run), str(fixed), "--out", str(tmp_path / "report.html")]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "imported" in page and "readout-dfr" in page


def test_gradcam_and_every_last_layer_method_read_an_imported_run(own, tmp_path):
    run = tmp_path / "mine"
    assert main(import_args(own, run, "--no-diagnose")) == 0
    assert not (run / "diagnosis.json").exists()
    assert main(["gradcam", "--run", str(run), "--n", "2", "--n-mass", "4"]) == 0
    for method, settings in (("dfr", []), ("afr", ["method.reweight_on=val"]), ("readout-dfr", [])):
        out = str(tmp_path / method)
        assert main(["retrain", "--run", str(run), "--method", method, "--out", out, *settings]) == 0, method
    # SELF reads the network after its first epoch, which a model trained elsewhere does not come with
    assert main(["retrain", "--run", str(run), "--method", "self", "--out", str(tmp_path / "self")]) == 2


def test_an_imported_model_refits_as_the_same_weights_trained_here(tmp_path):
    cfg = tiny_config(tmp_path, train={"epochs": 1})
    trained = train(cfg, log=lambda _m: None)
    state = tmp_path / "weights.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in load_checkpoint(Path(cfg.out) / "checkpoints/best.pt").items()}},
               state)  # as DataParallel inside a wrapper saves it
    data = [f"data.{k}={json.dumps(v)}" for k, v in cfg.data.settings.items()]
    imported = tmp_path / "imported"
    assert main(["import", "--model", "small-cnn", "--checkpoint", str(state), "--data", cfg.data.name, "--out",
                 str(imported), "--no-diagnose", "model.width=8", *data]) == 0
    assert json.loads((imported / "metrics.json").read_text())["test"] == trained["test"]
    here = retrain(cfg.out, "readout-dfr", tmp_path / "here-fixed", log=lambda _m: None)
    there = retrain(imported, "readout-dfr", tmp_path / "there-fixed", log=lambda _m: None)
    assert there["val"] == here["val"] and there["test"] == here["test"]


def test_a_pickled_module_needs_the_flag_and_warns(own, tmp_path, capsys):
    root, csv, model_file, checkpoint = own
    spec = importlib.util.spec_from_file_location("pickled_models", model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["pickled_models"] = module  # what unpickling the whole module imports
    net = module.Net()
    net.load_state_dict(torch.load(checkpoint))
    whole = tmp_path / "whole.pt"
    torch.save(net, whole)
    args = import_args((root, csv, model_file, whole), tmp_path / "run")
    assert main(args) == 2 and not (tmp_path / "run").exists()
    capsys.readouterr()
    assert main([*args, "--pickled-module", "--no-diagnose"]) == 0
    assert "earlyreadout: warning: loading" in capsys.readouterr().err  # it can run code: said in one line


BAD = [
    (lambda own, tmp: ["--model", "missing.py:Net"], "model file"),
    (lambda own, tmp: ["--model", f"{own[2]}:Nett"], "has no 'Nett' (did you mean 'Net'"),
    (lambda own, tmp: ["--model", f"{own[2]}:Net", "model.kwargs={depth: 3}"], "raised TypeError"),
    (lambda own, tmp: ["--model", "small-cnn"], "does not fit SmallCNN (missing: block1"),
    (lambda own, tmp: ["--channels", "1", "--mean", "0.5", "--std", "0.5"], "the model cannot take the data's inputs"),
    (lambda own, tmp: ["--channels", "1"], "data.mean has 3 values"),
    (lambda own, tmp: ["model.kwargs={n_classes: 3}"], "does not fit Net (wrong shape"),
    (lambda own, tmp: ["--checkpoint", str(own[0] / "metadata.csv")], "is truncated or not a PyTorch file"),
    (lambda own, tmp: ["data.label_column=label"], "label"),
    (lambda own, tmp: ["method.lr=0.1"], "import takes data.*, model.* and train.* settings"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_is_one_line_exit_2_and_nothing_written(own, tmp_path, capsys, case):
    extra, expected = BAD[case]
    args = import_args(own, tmp_path / "run")
    given = extra(own, tmp_path)
    for flag in ("--model", "--checkpoint"):  # a given flag replaces the default one
        if flag in given:
            i = args.index(flag)
            del args[i:i + 2]
    assert main([*args, *given]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_a_method_that_needs_the_blank_attributes_is_refused(own, tmp_path, capsys):
    csv = own[1]
    out = tmp_path / "dro"
    assert main(["train", "--method", "groupdro", "--data", "csv", "--data-root", str(csv), "--model", "small-cnn",
                 "data.image_size=16", "--epochs", "1", "--out", str(out)]) == 2
    assert "group labels on train" in capsys.readouterr().err
    assert not (out / "config.yaml").exists()


def test_compare_refits_an_imported_run_as_its_first_stage(own, tmp_path):
    out = tmp_path / "cmp"
    assert main(import_args(own, out / "erm" / "seed0", "--no-diagnose")) == 0
    assert main(["compare", "--methods", "erm+readout-dfr", "--data", "csv", "--data-root", str(own[1]),
                 "--model", "small-cnn", "data.image_size=16", "--device", "cpu", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["method"] for r in summary] == ["erm+readout-dfr"] and summary[0]["labels_used"] == "unknown"
    assert summary[0]["test"]["worst_group_accuracy"] > 0.5
