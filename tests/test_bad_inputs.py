"""Every command refuses bad input with exit code 2 and one line naming the problem, touching nothing saved.

One row per case: the command line (`RUN` stands for a finished tiny run, `TMP` for an empty folder), a
fragment of the expected message. Each row also checks that the finished run is byte-identical after.
`FILE_ROWS` first damage or plant files (`{path: text, bytes, None to delete, DIR for a folder}`), then run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
    (["search", "--method", "groupdro", *TINY, "--trials", "many", "--pruner", "mediam", "--out", "TMP/s"],
     ("got 'many' instead; the 'pruner' parameter of search must be one of 'none', 'median'; got 'mediam' instead "
      "(did you mean 'median'?)")),
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
    (["diagnose", "--run", "TMP/none", "--head", "lnear"], "got 'lnear' instead (did you mean 'linear'?)"),
    (["diagnose", "--run", "RUN", "--epochs", "0", "--folds", "0", "--out", "TMP/dg"],
     "'epochs' parameter of diagnose must be an int in the range [1, inf); got '0' instead; the 'folds' parameter"),
    (["diagnose", "--run", "RUN", "--device", "gpu", "--out", "TMP/dg"], "diagnose: unknown device 'gpu'"),
    (["diagnose", "--run", "RUN", "--lr", "0", "--minority-ratio", "2", "--out", "TMP/dg"],
     "'lr' parameter of diagnose must be a float in the range (0, inf); got '0' instead; the 'minority_ratio'"),
    # gradcam
    (["gradcam", "--run", "TMP/none"], "is not a run directory"),
    (["gradcam", "--run", "RUN", "--n", "0", "--out", "TMP/g"], "'n' parameter of gradcam must be an int in the range [1"),
    (["gradcam", "--run", "RUN", "--split", "tset", "--out", "TMP/g"], "got 'tset' instead (did you mean 'test'?)"),
    (["gradcam", "--run", "RUN", "--n-mass", "x", "--device", "gpu", "--out", "TMP/g"],
     "'n_mass' parameter of gradcam must be an int in the range [1, inf); got 'x' instead; gradcam: unknown device"),
    (["gradcam", "--run", "TMP/none", "--batch-size", "0"], "'batch_size' parameter of gradcam"),
    (["gradcam", "--run", "RUN", "--layer", "blok1", "--out", "TMP/g"], "no layer 'blok1'"),
    # report
    (["report", "TMP/none", "--out", "TMP/r.html"], "not a run directory"),
    (["report", "TMP", "--out", "TMP/r.html"], "no run directories"),
    (["report", "RUN", "--n", "0", "--device", "tpu", "--out", "TMP/r.html"],
     "'n' parameter of report must be an int in the range [1, inf); got '0' instead; report: unknown device 'tpu'"),
    (["report", "TMP/none", "--n-mass", "-1", "--out", "TMP/r.html"], "'n_mass' parameter of report"),
    # out: a declared path
    (["train", "--out", ""], "the 'out' parameter of the run config must be a path (a non-empty string); got ''"),
    (["train", "out=[1]"], "the 'out' parameter of the run config must be a path"),
]


CSV_HEAD = "filename,y,a,split\n"
CSV_OK = CSV_HEAD + "a cat,1,0,0\na dog,0,1,1\na cow,0,1,2\n"
TEXT_CSV = ["train", "--data", "csv", "--data-root", "TMP/t.csv", "data.modality=text", "--model", "bag-of-embeddings",
            "--epochs", "1", "--device", "cpu", "--out", "TMP/x"]
DISTILL = ["distill", "--student", "small-cnn", *TINY, "--out", "TMP/d"]
RESUME = ["train", "--resume", "--out", "RUN"]
SEARCH = ["search", "--method", "groupdro", *TINY, "--trials", "1", "--out", "TMP/s"]

FILE_ROWS = [
    # resume with settings that change results: every differing key named, stored vs given
    ({}, [*RESUME, "--lr", "0.1"], "(method.lr: stored 0.01, given 0.1); resume without changing them"),
    ({}, [*RESUME, "--lr", "0.1", "--seed", "3", "data.n_train=128"],
     "method.lr: stored 0.01, given 0.1; data.n_train: stored 64, given 128; train.seed: stored 0, given 3"),
    ({}, [*RESUME, "--method", "groupdro"], "method.name: stored 'erm', given 'groupdro'"),
    ({}, [*RESUME, "train.select_by=average", "--device", "cpu"], "train.select_by: stored 'auto', given 'average'"),
    ({"TMP/c.yaml": "method: {name: erm, lr: 0.05}\ndata: {name: colored-digits, n_train: 64}"},
     [*RESUME, "-c", "TMP/c.yaml"], "method.lr: stored 0.01, given 0.05"),
    ({}, ["distill", "--resume", "--out", "RUN", "--lr", "0.2"], "method.lr: stored 0.01, given 0.2"),
    ({"RUN/checkpoints/last.pt": None}, RESUME, "has no checkpoint to resume"),
    ({"RUN/checkpoints/last.pt": "RUN/checkpoints/best.pt"}, RESUME, "is not a resume checkpoint"),
    # a run's config.yaml
    ({"RUN/config.yaml": "method: [erm"}, RESUME, "config.yaml' is not valid YAML (line 1"),
    ({"RUN/config.yaml": "- erm\n- sgd\n"}, RESUME, "config.yaml' must hold a YAML mapping, got list"),
    ({"RUN/config.yaml": "method: {name: erm, lr: -1}\n"}, RESUME, "config.yaml' is not a valid config"),
    ({"RUN/config.yaml": b"\xff\xfe\x00"}, RESUME, "config.yaml' is not a text file"),
    ({"RUN/config.yaml": "method: [erm"}, ["gradcam", "--run", "RUN", "--out", "TMP/g"], "is not valid YAML"),
    ({"RUN/config.yaml": "method: {name: ermm}\n"}, ["diagnose", "--run", "RUN", "--out", "TMP/dg"],
     "is not a valid config (unknown method 'ermm'"),
    ({"RUN/config.yaml": "7\n"}, ["report", "RUN", "--out", "TMP/r.html"], "must hold a YAML mapping, got int"),
    ({"TMP/c.yaml": "[1, 2]"}, ["train", "-c", "TMP/c.yaml", "--out", "TMP/x"], "config file"),
    ({"TMP/c.yaml": "DIR"}, ["train", "-c", "TMP/c.yaml", "--out", "TMP/x"], "is a folder, not a file"),
    # metrics.json, log.jsonl and the other files a report reads
    ({"RUN/metrics.json": "{\"val\": "}, ["report", "RUN", "--out", "TMP/r.html"],
     "metrics file '", ),
    ({"RUN/metrics.json": "[]"}, ["report", "RUN", "--out", "TMP/r.html"], "metrics.json' must hold a JSON mapping"),
    ({"RUN/log.jsonl": "{\"epoch\": 0}\n{\"epoch\": 1"}, ["report", "RUN", "--out", "TMP/r.html"],
     "line 2 of training log"),
    ({"RUN/log.jsonl": "oops\n"}, RESUME, "line 1 of training log"),
    ({"RUN/diagnosis.json": "{"}, ["report", "RUN", "--no-gradcam", "--out", "TMP/r.html"], "diagnosis '"),
    ({"RUN/versions.json": "torch 2"}, ["report", "RUN", "--no-gradcam", "--out", "TMP/r.html"], "versions file"),
    ({"TMP/c/erm/seed0": "RUN", "TMP/c/erm/seed0/metrics.json": "{"},
     ["compare", "--methods", "erm", *TINY, "--out", "TMP/c"], "metrics file"),
    # teachers
    ({"RUN/done": None}, [*DISTILL, "--teacher", "RUN"], "is not a finished run (no done marker"),
    ({}, [*DISTILL, "--teacher", "TMP"], "is not a finished run (no config.yaml: not a run directory)"),
    ({}, [*DISTILL, "--method", "kd", "method.teacher=TMP"], "teacher '"),
    # a study database that is not one
    ({"TMP/s/study.db": "not a database, just text that is long enough to be a header"}, SEARCH,
     "study storage 'sqlite:///"),
    # data tables
    ({"TMP/t.csv": CSV_HEAD}, TEXT_CSV, "has no rows (only a header)"),
    ({"TMP/t.csv": CSV_HEAD + "a cat,1,0,0\na dog,,1,1\na cow,0,1,2\n"}, TEXT_CSV, "empty value on line 3"),
    ({"TMP/t.csv": CSV_HEAD + "a cat,1,0,0\na cow,0,1,2\n"}, TEXT_CSV, "no val rows"),
    ({"TMP/t.csv/metadata.csv": "DIR"}, TEXT_CSV, "(Is a directory)"),
    ({"TMP/t.csv": "filename,label,split\nx,1,0\n"}, TEXT_CSV, "has no column 'y'"),
    ({"TMP/t.csv": bytes(range(256)) * 4}, TEXT_CSV, "as CSV ("),
    ({"TMP/t.csv": CSV_HEAD + "a cat,1,0,7\n"}, TEXT_CSV, "holds split values"),
    # pretrained weights that are not a state dict
    ({"TMP/w.pt": "not torch"}, ["train", "--model", "resnet", "model.arch=resnet18", "--weights", "TMP/w.pt", "--epochs", "1",
      "--out", "TMP/x"],
     "pretrained weights '"),
    # a tokenizer folder without a tokenizer
    ({"TMP/t.csv": CSV_OK, "TMP/tok/readme.txt": "hi"}, [*TEXT_CSV, "data.tokenizer=TMP/tok"],
     "holds no tokenizer files"),
]


def plant(files: dict[str, str | bytes | None], run: Path, empty: Path) -> None:
    """Write, copy (a value naming RUN/...), delete (None) or make a folder (DIR) at each path."""
    def where(text: str) -> Path:
        return Path(text.replace("RUN", str(run)).replace("TMP", str(empty)))

    for name, content in files.items():
        path = where(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            path.unlink()
        elif content == "DIR":
            path.mkdir()
        elif isinstance(content, str) and content.startswith("RUN"):
            source = where(content)
            shutil.copytree(source, path) if source.is_dir() else shutil.copyfile(source, path)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    assert main(["train", *TINY, "--out", str(root / "run")]) == 0
    return root / "run"


CASES = [({}, args, expected) for args, expected in ROWS] + FILE_ROWS


@pytest.mark.parametrize("args, expected", [
    (["diagnose", "--run", "RUN", "--head", "lnear"], "(did you mean 'linear'?)"),
    (["gradcam", "--run", "RUN", "--split", "tset"], "(did you mean 'test'?)"),
    (["report", "RUN", "--n", "0", "--out", "TMP/r.html"], "'n' parameter of report"),
    (["train", "--method", "sieve", "method.readout_layer=stage:2, stage:7", "--out", "TMP/x"],
     "method 'sieve': readout_layer='stage:7': use stage:1 .. stage:4"),
    (["train", "--method", "dedier", "method.readout_layer=stage:0", "--out", "TMP/x"], "readout_layer='stage:0'"),
    (["diagnose", "--run", "RUN", "--layer", "blok1", "--out", "TMP/dg"], "no layer 'blok1' in SmallCNN (did you mean"),
    (["gradcam", "--run", "RUN", "--layer", "block9", "--out", "TMP/gc"], "no layer 'block9'"),
    (["train", "--method", "sieve", "--data", "waterbirds", "--data-root", "TMP", "method.readout_layer=layer9",
      "--out", "TMP/x"], "no layer 'layer9' in ResNet (did you mean 'layer4'"),
])
def test_bad_options_are_refused_before_any_data_loads(args, expected, finished, tmp_path, capsys, monkeypatch):
    def no_data(*_args, **_kwargs):
        raise AssertionError("data loaded before the options were checked")

    for module in ("earlyreadout.train.runs", "earlyreadout.train.engine"):
        monkeypatch.setattr(f"{module}.load_splits", no_data)
    argv = [a.replace("RUN", str(finished)).replace("TMP", str(tmp_path)) for a in args]
    assert main(argv) == 2
    assert expected in capsys.readouterr().err


def test_the_table_covers_every_failure_path():
    assert len(CASES) >= 60


@pytest.mark.parametrize("files, args, expected", CASES, ids=[" ".join(a)[:60] for _, a, _ in CASES])
def test_bad_input_is_one_line_and_exit_2(files, args, expected, finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    empty = tmp_path / "empty"
    empty.mkdir()
    plant(files, run, empty)
    before = folder_digest(run)
    argv = [a.replace("RUN", str(run)).replace("TMP", str(empty)) for a in args]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert expected.replace("TMP", str(empty)) in lines[0], lines[0]
    assert folder_digest(run) == before
