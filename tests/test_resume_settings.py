"""What a resume allows: settings declared not to change results (device, workers, batch size of evaluation,
progress bars) and a longer run; everything else is refused (see the table in test_bad_inputs.py)."""

from __future__ import annotations

import shutil

import pytest
import yaml

from conftest import folder_digest
from earlyreadout.cli import main
from earlyreadout.config import TRAIN_OPTIONS, result_settings
from earlyreadout.report.page import build_report, setting_key

TINY = ["--data", "colored-digits", "data.n_train=64", "data.n_val=32", "data.n_test=32", "data.size=16",
        "model.width=4", "--epochs", "1", "--batch-size", "32", "--device", "cpu"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    assert main(["train", *TINY, "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.mark.parametrize("changes", [
    ["--device", "cpu"],
    ["train.num_workers=2", "train.progress=false"],
    ["train.eval_batch_size=7", "--device", "cpu", "train.num_workers=1"],
])
def test_a_resume_may_change_what_cannot_change_results(changes, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    metrics = (run / "metrics.json").read_text()
    assert main(["train", "--resume", "--out", str(run), *changes]) == 0
    assert (run / "metrics.json").read_text() == metrics


def test_a_resume_may_extend_the_run(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 2
    assert len((run / "log.jsonl").read_text().splitlines()) == 2


def test_a_resume_may_not_shorten_the_run(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    assert main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 0
    before = folder_digest(run)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(run), "--epochs", "1"]) == 2
    assert "it has already trained 2 epochs" in capsys.readouterr().err
    assert folder_digest(run) == before


def test_one_declaration_serves_resume_and_report():
    neutral = {f"train.{k}" for k, p in TRAIN_OPTIONS.items() if not p.affects_results}
    assert neutral == {"train.device", "train.num_workers", "train.progress", "train.eval_batch_size"}
    config = {"method": {"name": "erm", "lr": 0.1}, "train": {"device": "cpu", "seed": 1, "epochs": 3}, "out": "x"}
    assert result_settings(config) == {"method.name": "erm", "method.lr": 0.1, "train.seed": 1, "train.epochs": 3}
    moved = {**config, "train": {**config["train"], "device": "cuda", "seed": 2}, "out": "y"}
    assert setting_key(moved) == setting_key(config)


def test_the_report_names_unfinished_runs(finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "metrics.json").unlink()
    page = build_report([run], gradcam=False)
    assert f"Not finished yet (no metrics.json), left out: {run}" in page
