"""Every command refuses bad input with exit code 2 and one line naming the problem, touching nothing saved.

One row per case: the command line (`RUN` stands for a finished tiny run, `TMP` for an empty folder), a
fragment of the expected message. Each row also checks that the finished run is byte-identical after.
"""

from __future__ import annotations

import shutil

import pytest

from conftest import folder_digest
from earlyreadout.cli import main

TINY = ["--data", "colored-digits", "data.n_train=64", "data.n_val=32", "data.n_test=32", "data.size=16",
        "model.width=4", "--epochs", "1", "--batch-size", "32", "--device", "cpu"]

ROWS = [
    # train: names, types, ranges, sections
    (["train", "--method", "ermm", "--out", "TMP/x"], "unknown method 'ermm' (did you mean 'erm'"),
    (["train", "--data", "colored-digit", "--out", "TMP/x"], "unknown dataset 'colored-digit'"),
    (["train", "--model", "resnett", "--out", "TMP/x"], "unknown model 'resnett'"),
    (["train", "--epochs", "0", "--out", "TMP/x"], "'epochs' parameter of train must be an int in the range [1"),
    (["train", "--batch-size", "-3", "--out", "TMP/x"], "'batch_size' parameter of train"),
    (["train", "--seed", "-1", "--out", "TMP/x"], "'seed' parameter of train"),
    (["train", "--lr", "0", "--out", "TMP/x"], "'lr' parameter of method 'erm'"),
    (["train", "method.lrate=0.1", "--out", "TMP/x"], "unknown parameter 'lrate' for method 'erm'"),
    (["train", "data.correlation=1.5", "--out", "TMP/x"], "'correlation' parameter of dataset 'colored-digits'"),
    (["train", "data.n_train=0", "--out", "TMP/x"], "'n_train' parameter of dataset 'colored-digits'"),
    (["train", "train.select_by=best", "--out", "TMP/x"], "'select_by' parameter of train must be one of"),
    (["train", "train.device=tpu", "--out", "TMP/x"], "unknown device 'tpu'"),
    (["train", "--method", "jtt", "method.erm_epochs=0", "--out", "TMP/x"], "'erm_epochs' parameter of method 'jtt'"),
    (["train", "--method", "jtt", "method.upweight=both", "--out", "TMP/x"], "'upweight' parameter of method 'jtt'"),
    (["train", "--method", "readout-reweight", "method.folds=0", "--out", "TMP/x"],
     "'folds' parameter of method 'readout-reweight'"),
    (["train", "--method", "readout-reweight", "method.weighting=cubic", "--out", "TMP/x"],
     "'weighting' parameter of method 'readout-reweight' must be one of 'exp', 'lambda'"),
    (["train", "--method", "readout-reweight", "method.readout_layer=stage:9", *TINY, "--out", "TMP/x"],
     "readout_layer='stage:9': use stage:1 .. stage:4"),
    (["train", "--method", "readout-reweight", "method.readout_layer=blok2", *TINY, "--out", "TMP/x"],
     "no layer 'blok2' in SmallCNN (did you mean"),
    (["train", "--method", "sieve", "method.readout_steps=0", "--out", "TMP/x"], "'readout_steps' parameter of method 'sieve'"),
    (["train", "--method", "sieve", "method.mode=two-pass", "--out", "TMP/x"], "'mode' parameter of method 'sieve'"),
    (["train", "--method", "groupdro", "method.eta=-1", "--out", "TMP/x"], "'eta' parameter of method 'groupdro'"),
    (["train", "--method", "groupdro", "method.balanced_sampling=maybe", "--out", "TMP/x"],
     "'balanced_sampling' parameter of method 'groupdro'"),
    (["train", "--method", "kd", *TINY, "--out", "TMP/x"], "needs a teacher"),
    (["train", "--method", "kd", "method.teacher=TMP/none", *TINY, "--out", "TMP/x"], "is not a run directory"),
    (["train", "-c", "TMP/missing.yaml"], "missing.yaml"),
    (["train", "--resume"], "--resume needs --out"),
    (["train", "--resume", "--out", "TMP"], "is not a run directory (no config.yaml)"),
    (["train", *TINY, "--out", "RUN"], "already holds a run"),
    (["train", "--data", "waterbirds", "--data-root", "TMP/none", "--out", "TMP/x"], "none"),
    # compare
    (["compare", "--methods", "erm,nope", "--out", "TMP/c"], "unknown method 'nope'"),
    (["compare", "--methods", "erm", "--seeds", "0", "--out", "TMP/c"], "--seeds must be at least 1"),
    (["compare", "--methods", "erm,ceiling", "--data", "waterbirds", "data.root=TMP", "--out", "TMP/c"],
     "needs a generated benchmark"),
    # search
    (["search", "--method", "groupdro", *TINY, "--trials", "0", "--out", "TMP/s"], "'trials' parameter of search"),
    (["search", "--method", "erm", "method.lr=0.1", *TINY, "search.space.lr=[1, 2, 3, 4]", "--out", "TMP/s"],
     "search.space.lr must be"),
    (["search", "--method", "jtt", *TINY, "search.space.lamda_up=[1, 2]", "--out", "TMP/s"],
     "unknown parameter 'lamda_up'"),
    # distill
    (["distill", "--teacher", "TMP/none", "--student", "small-cnn", "--out", "TMP/d"], "is not a finished run"),
    # diagnose
    (["diagnose", "--run", "TMP/none"], "is not a run directory"),
    (["diagnose", "--run", "RUN", "--epochs", "0", "--out", "TMP/dg"], "epochs"),
    (["diagnose", "--run", "RUN", "--folds", "0", "--out", "TMP/dg"], "folds"),
    (["diagnose", "--run", "RUN", "--layer", "blok1", "--out", "TMP/dg"], "no layer 'blok1'"),
    (["diagnose", "--run", "RUN", "--head", "deep", "--out", "TMP/dg"], "deep"),
    # gradcam
    (["gradcam", "--run", "TMP/none"], "is not a run directory"),
    (["gradcam", "--run", "RUN", "--n", "0", "--out", "TMP/g"], "--n and --n-mass must be at least 1"),
    (["gradcam", "--run", "RUN", "--split", "dev", "--out", "TMP/g"], "no split 'dev'"),
    (["gradcam", "--run", "RUN", "--layer", "blok1", "--out", "TMP/g"], "no layer 'blok1'"),
    # report
    (["report", "TMP/none", "--out", "TMP/r.html"], "not a run directory"),
    (["report", "TMP", "--out", "TMP/r.html"], "no run directories"),
]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    assert main(["train", *TINY, "--out", str(root / "run")]) == 0
    return root / "run"



@pytest.mark.parametrize("args, expected", ROWS, ids=[" ".join(a)[:60] for a, _ in ROWS])
def test_bad_input_is_one_line_and_exit_2(args, expected, finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = folder_digest(run)
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [a.replace("RUN", str(run)).replace("TMP", str(empty)) for a in args]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected.replace("TMP", str(empty)) in lines[0], lines[0]
    assert folder_digest(run) == before
