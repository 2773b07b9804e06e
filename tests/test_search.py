import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from earlyreadout.config import build_config, read_yaml
from earlyreadout.errors import ConfigError, UserError
from earlyreadout.params import IntRange, LogUniform, Uniform
from earlyreadout.search import build_space, search

ENV = {**os.environ, "CI": "true", "OMP_NUM_THREADS": "1"}
TINY = {"method": {"name": "groupdro"},
        "data": {"name": "colored-digits", "n_train": 64, "n_val": 32, "n_test": 32, "size": 16},
        "model": {"name": "small-cnn", "width": 4},
        "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64, "device": "cpu"},
        "search": {"space": {"weight_decay": None, "lr": [0.001, 0.1, "log"]}}}


def write_config(tmp_path, **changes):
    raw = {**TINY, "out": str(tmp_path / "search"), **changes}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def load_study(out):
    return optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")


def test_space_comes_from_the_method_and_the_config_overrides_it():
    space = build_space("jtt", {})
    assert space["erm_epochs"] == IntRange(1, 5) and isinstance(space["lambda_up"], LogUniform) and "lr" in space
    space = build_space("jtt", {"erm_epochs": [2, 4], "lambda_up": None, "momentum": [0.5, 0.9]})
    assert space["erm_epochs"] == IntRange(2, 4) and "lambda_up" not in space and space["momentum"] == Uniform(0.5, 0.9)


def test_bad_space_lists_every_problem():
    with pytest.raises(ConfigError) as e:
        build_space("jtt", {"lamda_up": [1, 2], "erm_epochs": [0, 3], "lr": [0.1, 0.01, "log"], "upweight": "loss"})
    text = str(e.value)
    assert "unknown parameter 'lamda_up'" in text and "did you mean 'lambda_up'" in text
    assert "search.space.erm_epochs: both ends must be an int in the range [1, inf)" in text
    assert "search.space.lr: need low < high" in text
    assert "search.space.upweight must be [low, high]" in text


def test_search_keeps_every_trial_and_summarises_seeds(tmp_path):
    summary = search(str(write_config(tmp_path)), [], options={"trials": 2, "seeds": 2, "pruner": "none"})
    out = tmp_path / "search"
    trials = load_study(out).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for t in trials:
        assert set(t.params) == {"lr", "eta"}  # weight_decay removed from the space by the config
        metrics = t.user_attrs["metrics"]
        assert t.value == metrics["val"]["worst_group_accuracy"]  # the objective is validation, never test
        assert "test" in metrics and (out / "trials" / str(t.number) / "done").exists()
    best = max(trials, key=lambda t: t.value)
    assert summary["best_trial"] == best.number and summary["params"] == best.params
    runs = [json.loads((out / "best" / f"seed{s}" / "metrics.json").read_text()) for s in (1, 2)]
    values = [r["test"]["worst_group_accuracy"] for r in runs]
    assert summary["test"]["worst_group_accuracy"]["values"] == values
    assert summary["test"]["worst_group_accuracy"]["mean"] == pytest.approx(sum(values) / 2)
    assert json.loads((out / "summary.json").read_text())["seeds"] == [1, 2]


def test_a_changed_config_cannot_join_the_study(tmp_path):
    search(str(write_config(tmp_path)), [], options={"trials": 1, "pruner": "none"})
    with pytest.raises(UserError, match="started with another config"):
        search(str(write_config(tmp_path)), ["method.adjustment=1"], options={"trials": 2})


def worker(config, trials, *extra):
    return subprocess.Popen([sys.executable, "-m", "earlyreadout", "search", "-c", str(config), "--trials",
                             str(trials), "--pruner", "none", *extra], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_workers_share_one_sqlite_study(tmp_path):
    config = write_config(tmp_path)
    procs = [worker(config, 4), worker(config, 4)]
    for p in procs:
        _, err = p.communicate(timeout=400)
        assert p.returncode == 0, err[-2000:]
    trials = load_study(tmp_path / "search").trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == len(trials) >= 4  # each worker may start one trial past the target, none is lost
    assert len({t.number for t in trials}) == len(trials)
    for t in complete:
        assert t.user_attrs["metrics"]["val"]["worst_group_accuracy"] == t.value
        assert (tmp_path / "search" / "trials" / str(t.number) / "done").exists()


def test_killed_search_resumes_and_finishes_the_killed_trial(tmp_path):
    config = write_config(tmp_path, data={**TINY["data"], "n_train": 512},
                          train={**TINY["train"], "epochs": 3})
    out = tmp_path / "search"
    proc = worker(config, 3)
    log = out / "trials" / "1" / "log.jsonl"
    checkpoint = out / "trials" / "1" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not checkpoint.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid trial 1, after its first epoch: no chance to clean up
    proc.wait()
    assert not (out / "trials" / "1" / "done").exists(), "trial 1 finished before it could be killed"
    first = load_study(out).trials[0]
    assert first.state == optuna.trial.TrialState.COMPLETE
    time.sleep(2.5)  # the killed worker's heartbeat goes stale (grace period 2 s below)
    search(str(config), [], options={"trials": 3, "pruner": "none", "heartbeat": 1})
    trials = load_study(out).trials
    assert trials[0].value == first.value  # the finished trial was kept, not re-run
    assert trials[1].state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("resume_of") == 1]
    assert len(retry) == 1 and retry[0].params == trials[1].params
    assert retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].user_attrs["run_dir"] == str(out / "trials" / "1")  # continued from its checkpoint
    epochs = [json.loads(r)["epoch"] for r in log.read_text().splitlines()]
    assert epochs == [0, 1, 2]
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 3


def test_a_pruned_trial_stops_after_its_epoch_and_counts_as_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    config = write_config(tmp_path, train={**TINY["train"], "epochs": 3})
    search(str(config), [], options={"trials": 1})
    (trial,) = load_study(tmp_path / "search").trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]
    run = tmp_path / "search" / "trials" / "0"
    assert len((run / "log.jsonl").read_text().splitlines()) == 1 and not (run / "done").exists()


def test_sigterm_marks_the_trial_interrupted_and_a_rerun_continues_it(tmp_path):
    # enough epochs that the signal lands while the trial still runs, however fast one epoch is
    config = write_config(tmp_path, data={**TINY["data"], "n_train": 512},
                          train={**TINY["train"], "epochs": 20})
    out = tmp_path / "search"
    proc = worker(config, 1)
    checkpoint = out / "trials" / "0" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not checkpoint.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command again" in err
    cut, queued = load_study(out).trials  # the interrupted worker queued the retry as it stopped
    assert cut.state == optuna.trial.TrialState.FAIL and cut.user_attrs["interrupted"]
    assert queued.state == optuna.trial.TrialState.WAITING and queued.user_attrs["resume_of"] == 0
    search(str(config), [], options={"trials": 1, "pruner": "none"})
    cut, retry = load_study(out).trials
    assert retry.user_attrs["resume_of"] == 0 and retry.params == cut.params
    assert retry.state == optuna.trial.TrialState.COMPLETE
    epochs = [json.loads(r)["epoch"] for r in (out / "trials" / "0" / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(20))


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "benchmarks" / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_benchmark_search_configs_validate(path):
    raw = read_yaml(path)
    space = raw.pop("search")["space"]
    assert build_space(build_config(raw).method.name, space)
    assert f"earlyreadout search -c benchmarks/configs/{path.name}" in path.read_text()
